-- chatd schema, version 2 (PostgreSQL): the end-to-end key directory and the to-device queue.
-- The server stores public keys and opaque bytes only; it never holds a private key.

-- A device's identity (X25519 public key + its signature by the device's Ed25519 login key).
CREATE TABLE identity_keys (
    device_id     BIGINT  PRIMARY KEY REFERENCES devices (id),
    identity_key  BYTEA   NOT NULL CHECK (octet_length(identity_key) = 32),
    identity_sig  BYTEA   NOT NULL CHECK (octet_length(identity_sig) = 64),
    updated_at    BIGINT  NOT NULL
);

-- The current signed prekey of each type per device: 'ec' (X25519) and 'pq' (ML-KEM-768).
CREATE TABLE signed_prekeys (
    device_id   BIGINT  NOT NULL REFERENCES devices (id),
    type        TEXT    NOT NULL CHECK (type IN ('ec', 'pq')),
    kid         BIGINT  NOT NULL,
    key         BYTEA   NOT NULL,
    sig         BYTEA   NOT NULL CHECK (octet_length(sig) = 64),
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (device_id, type)
);

-- Unclaimed one-time prekeys. A claim deletes the row it hands out, in the same transaction
-- (rows locked by another node's claim in flight are skipped, never handed out twice).
CREATE TABLE one_time_prekeys (
    device_id   BIGINT  NOT NULL REFERENCES devices (id),
    kid         BIGINT  NOT NULL,
    key         BYTEA   NOT NULL CHECK (octet_length(key) = 32),
    PRIMARY KEY (device_id, kid)
);

-- Each account's latest signed device list (opaque body).
CREATE TABLE device_lists (
    account_id  BIGINT  PRIMARY KEY REFERENCES accounts (id),
    version     BIGINT  NOT NULL CHECK (version >= 1),
    body        BYTEA   NOT NULL,
    sig         BYTEA   NOT NULL CHECK (octet_length(sig) = 64),
    master_key  BYTEA   NOT NULL CHECK (octet_length(master_key) = 32),
    updated_at  BIGINT  NOT NULL
);

-- Per target device: the last tid handed out (never reused, even after acks) and the number of
-- items queued. Its row lock orders tids of one device across nodes.
CREATE TABLE to_device_state (
    device_id   BIGINT  PRIMARY KEY REFERENCES devices (id),
    last_tid    BIGINT  NOT NULL DEFAULT 0,
    queued      BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE to_device (
    device_id      BIGINT  NOT NULL REFERENCES devices (id),
    tid            BIGINT  NOT NULL CHECK (tid >= 1),
    sender         BIGINT  NOT NULL,
    sender_device  BIGINT  NOT NULL,
    body           BYTEA   NOT NULL,
    queued_at      BIGINT  NOT NULL,
    PRIMARY KEY (device_id, tid)
);
