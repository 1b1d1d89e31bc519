-- chatd schema, version 6 (SQLite): signed membership logs (SPEC.md 8.5, E2E.md section 15).
-- One row per entry: the signed body and signature as the acting device sent them, its epoch,
-- the seq of the system message that recorded the change (0: the first entry of a direct
-- conversation made before logs existed), its hash (the next entry's prev) and the log's group
-- id, unique across conversations (a log belongs to one conversation).
CREATE TABLE member_log (
    conv_id     INTEGER NOT NULL REFERENCES conversations (id),
    epoch       INTEGER NOT NULL CHECK (epoch >= 1),
    seq         INTEGER NOT NULL,
    hash        BLOB    NOT NULL CHECK (length(hash) = 32),
    group_id    BLOB    NOT NULL CHECK (length(group_id) = 16),
    body        BLOB    NOT NULL,
    sig         BLOB    NOT NULL CHECK (length(sig) = 64),
    PRIMARY KEY (conv_id, epoch)
) WITHOUT ROWID;
CREATE UNIQUE INDEX member_log_group ON member_log (group_id) WHERE epoch = 1;
