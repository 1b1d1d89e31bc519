-- chatd schema, version 28 (SQLite): the cmid index keyed by cmid first.
--
-- ``messages_by_cmid`` on (conv_id, device, cmid) put each message's entry at its
-- conversation's place in the index, so a commit of 7 messages to 7 conversations wrote 7 of
-- its leaves (~8 of the ~18.5 pages such a commit writes to the WAL). Keyed (cmid, device,
-- conv_id), the same unique set, a client whose cmids sort by the time they were made (the
-- SDK's do, SPEC.md 7.3) adds its entries at the index's end, beside everyone else's: ~2 leaves
-- per commit. A resend is found by the same three values, so its look-up is as exact.
DROP INDEX messages_by_cmid;
CREATE UNIQUE INDEX messages_by_cmid ON messages (cmid, device, conv_id) WHERE cmid IS NOT NULL;
