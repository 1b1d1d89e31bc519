-- chatd schema, version 1 (SQLite).
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    handle      TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    type        TEXT    NOT NULL CHECK (type IN ('user', 'bot')),
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    public_key  BLOB    NOT NULL UNIQUE CHECK (length(public_key) = 32),
    name        TEXT    NOT NULL,
    approved_by INTEGER REFERENCES devices (id),
    created_at  INTEGER NOT NULL
);
CREATE INDEX devices_by_account ON devices (account_id);

CREATE TABLE conversations (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('direct', 'group', 'channel')),
    title       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    direct_key  TEXT    UNIQUE
);

CREATE TABLE members (
    conv_id     INTEGER NOT NULL REFERENCES conversations (id),
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_seq  INTEGER NOT NULL,
    PRIMARY KEY (conv_id, account_id)
) WITHOUT ROWID;
CREATE INDEX members_by_account ON members (account_id, conv_id);

-- A conversation's last seq is max(seq) of its messages: no counter row to update per commit.
CREATE TABLE messages (
    conv_id     INTEGER NOT NULL REFERENCES conversations (id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    ts          INTEGER NOT NULL,
    sender      INTEGER NOT NULL,
    device      INTEGER NOT NULL,
    cmid        TEXT,
    kind        TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    PRIMARY KEY (conv_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_by_cmid ON messages (conv_id, device, cmid) WHERE cmid IS NOT NULL;

CREATE TABLE cursors (
    device_id   INTEGER NOT NULL REFERENCES devices (id),
    conv_id     INTEGER NOT NULL REFERENCES conversations (id),
    delivered   INTEGER NOT NULL DEFAULT 0,
    read        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, conv_id)
) WITHOUT ROWID;
