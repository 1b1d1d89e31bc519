-- chatd schema, version 6 (PostgreSQL): signed membership logs (SPEC.md 8.5, E2E.md section 15).
-- Same table as the SQLite schema. Entries are written under the conversation's row lock (like
-- seqs), so two nodes never extend one log from the same head.
CREATE TABLE member_log (
    conv_id     BIGINT  NOT NULL REFERENCES conversations (id),
    epoch       BIGINT  NOT NULL CHECK (epoch >= 1),
    seq         BIGINT  NOT NULL,
    hash        BYTEA   NOT NULL CHECK (length(hash) = 32),
    group_id    BYTEA   NOT NULL CHECK (length(group_id) = 16),
    body        BYTEA   NOT NULL,
    sig         BYTEA   NOT NULL CHECK (length(sig) = 64),
    PRIMARY KEY (conv_id, epoch)
);
CREATE UNIQUE INDEX member_log_group ON member_log (group_id) WHERE epoch = 1;
