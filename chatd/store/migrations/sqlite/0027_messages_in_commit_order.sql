-- sqlite: rebuilds tables (foreign keys are off while this runs, then checked: migrate.py)
-- chatd schema, version 27 (SQLite): messages are stored in the order they are committed.
--
-- ``messages`` was a WITHOUT ROWID table keyed by (conv_id, seq): a conversation's messages
-- side by side, so every message was inserted into the middle of the table, at its
-- conversation's end, and every full page there was split and its neighbours rebalanced. A
-- row (~250 bytes with a 200-byte body) fills 1/16 of a page, and the interior pages of such a
-- table hold whole rows too, so they split often as well. A commit of 7 messages to 7
-- conversations wrote ~25 pages to the WAL, 16 of them the table's.
--
-- As a rowid table the rows of one commit go side by side at the table's end (one page, two
-- when it fills), and (conv_id, seq) is a unique index of small entries: ~19 pages for the
-- same commit, and 15-20% less CPU per commit with its fsync (README, "Eleventh session").
-- Reading a conversation's range now takes one look-up of its index and one of the table per
-- message; the columns, their constraints and every query stay the same.
CREATE TABLE messages_0027 (
    conv_id     INTEGER NOT NULL REFERENCES conversations (id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    ts          INTEGER NOT NULL,
    sender      INTEGER NOT NULL,
    device      INTEGER NOT NULL,
    cmid        TEXT,
    kind        TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    to_accounts BLOB,
    withheld    BLOB,
    fc          BLOB,
    PRIMARY KEY (conv_id, seq)
);
-- The rows stored so far are copied in their old order (the old key's: no sort), so each
-- conversation's history stays side by side for reading; new rows follow in commit order.
INSERT INTO messages_0027
    (conv_id, seq, ts, sender, device, cmid, kind, body, to_accounts, withheld, fc)
    SELECT conv_id, seq, ts, sender, device, cmid, kind, body, to_accounts, withheld, fc
    FROM messages ORDER BY conv_id, seq;
DROP TABLE messages;
ALTER TABLE messages_0027 RENAME TO messages;
CREATE UNIQUE INDEX messages_by_cmid ON messages (conv_id, device, cmid) WHERE cmid IS NOT NULL;
