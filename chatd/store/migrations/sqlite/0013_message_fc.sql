-- chatd schema, version 13: a franked message's commitment ``fc`` in its own row (SPEC.md 18.7,
-- E2E.md 17), so ``deliver``, ``sync`` and ``fetch`` carry it to the receivers (who check it
-- opens with what they decrypted) and a report is verified against it: one write per message,
-- where the tag row of version 11 was a second one. ``franking_tags`` keeps the tags of the
-- messages franked before this version (read by reports only; nothing writes it any more).
ALTER TABLE messages ADD COLUMN fc BLOB;
