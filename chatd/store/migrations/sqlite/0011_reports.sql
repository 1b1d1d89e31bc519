-- chatd schema, version 11: message franking and reports (SPEC.md 18.7, E2E.md 17).
-- ``franking_tags``: for each message sent with a franking commitment, the server's tag binding
-- it to sender, conv, seq and ts (HMAC under the 'franking' secret of ``server_keys``). Neither
-- the commitment nor anything of the plaintext is stored; the tag outlives a deleted body.
-- ``reports``: verified reports, with the plaintext the reporter revealed, for the operator.
CREATE TABLE franking_tags (
    conv_id  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    sender   INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    tag      BLOB    NOT NULL CHECK (length(tag) = 32),
    PRIMARY KEY (conv_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE reports (
    id           INTEGER PRIMARY KEY,
    reporter     INTEGER NOT NULL,
    conv_id      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    sender       INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    plaintext    BLOB    NOT NULL,
    reason       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    resolved_at  INTEGER NOT NULL DEFAULT 0,
    resolution   TEXT    NOT NULL DEFAULT '',
    UNIQUE (reporter, conv_id, seq)
) STRICT;
CREATE INDEX reports_open ON reports (id) WHERE resolved_at = 0;
