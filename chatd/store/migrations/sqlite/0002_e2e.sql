-- chatd schema, version 2 (SQLite): the end-to-end key directory and the to-device queue.
-- The server stores public keys and opaque bytes only; it never holds a private key.

-- A device's identity (X25519 public key + its signature by the device's Ed25519 login key).
CREATE TABLE identity_keys (
    device_id     INTEGER PRIMARY KEY REFERENCES devices (id),
    identity_key  BLOB    NOT NULL CHECK (length(identity_key) = 32),
    identity_sig  BLOB    NOT NULL CHECK (length(identity_sig) = 64),
    updated_at    INTEGER NOT NULL
);

-- The current signed prekey of each type per device: 'ec' (X25519) and 'pq' (ML-KEM-768).
CREATE TABLE signed_prekeys (
    device_id   INTEGER NOT NULL REFERENCES devices (id),
    type        TEXT    NOT NULL CHECK (type IN ('ec', 'pq')),
    kid         INTEGER NOT NULL,
    key         BLOB    NOT NULL,
    sig         BLOB    NOT NULL CHECK (length(sig) = 64),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (device_id, type)
) WITHOUT ROWID;

-- Unclaimed one-time prekeys. A claim deletes the row it hands out, in the same transaction.
CREATE TABLE one_time_prekeys (
    device_id   INTEGER NOT NULL REFERENCES devices (id),
    kid         INTEGER NOT NULL,
    key         BLOB    NOT NULL CHECK (length(key) = 32),
    PRIMARY KEY (device_id, kid)
) WITHOUT ROWID;

-- Each account's latest signed device list (opaque body).
CREATE TABLE device_lists (
    account_id  INTEGER PRIMARY KEY REFERENCES accounts (id),
    version     INTEGER NOT NULL CHECK (version >= 1),
    body        BLOB    NOT NULL,
    sig         BLOB    NOT NULL CHECK (length(sig) = 64),
    master_key  BLOB    NOT NULL CHECK (length(master_key) = 32),
    updated_at  INTEGER NOT NULL
);

-- Per target device: the last tid handed out (never reused, even after acks) and the number of
-- items queued (the queue bound is checked without counting rows).
CREATE TABLE to_device_state (
    device_id   INTEGER PRIMARY KEY REFERENCES devices (id),
    last_tid    INTEGER NOT NULL DEFAULT 0,
    queued      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE to_device (
    device_id      INTEGER NOT NULL REFERENCES devices (id),
    tid            INTEGER NOT NULL CHECK (tid >= 1),
    sender         INTEGER NOT NULL,
    sender_device  INTEGER NOT NULL,
    body           BLOB    NOT NULL,
    queued_at      INTEGER NOT NULL,
    PRIMARY KEY (device_id, tid)
);
