-- chatd schema, version 3 (SQLite): wallets, the double-entry ledger, red packets and requests
-- to pay (SPEC.md section 15). Money is INTEGER minor units in STRICT tables: an integer that
-- would overflow becomes a REAL in SQLite, which a STRICT INTEGER column refuses (no floats).
-- Account -1 is issuance and -2 escrow (the system accounts); every other account is accounts.id.

CREATE TABLE wallets (
    account   INTEGER NOT NULL,
    currency  TEXT    NOT NULL CHECK (length(currency) = 3),
    balance   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, currency),
    -- No overdraft, enforced here and not only in Python: only issuance may go below zero.
    CHECK (balance >= 0 OR account = -1)
) STRICT, WITHOUT ROWID;

-- One row per posting. The id is the idempotency key: the client's transfer or packet id, or a
-- server-made id with a ':' (mint:..., claim:PACKET:ACCOUNT, refund:PACKET).
CREATE TABLE transfers (
    id           TEXT    PRIMARY KEY,
    type         TEXT    NOT NULL CHECK (type IN ('transfer', 'red_packet', 'claim', 'refund', 'mint')),
    debit        INTEGER NOT NULL,
    credit       INTEGER NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    conv         INTEGER,
    seq          INTEGER,
    intent_hash  BLOB    NOT NULL,
    request_id   TEXT,
    posted_at    INTEGER NOT NULL,
    note         TEXT    NOT NULL DEFAULT '',
    CHECK (debit != credit),
    -- Every posting but an operator top-up has its receipt message (conv, seq).
    CHECK ((type = 'mint') = (conv IS NULL) AND (conv IS NULL) = (seq IS NULL))
) STRICT;

-- Two entries per posting: a debit (amount < 0) and a credit of the same size; balance is the
-- wallet's balance right after the entry (the running balance of a statement).
CREATE TABLE entries (
    id           INTEGER PRIMARY KEY,
    transfer_id  TEXT    NOT NULL REFERENCES transfers (id),
    account      INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount != 0),
    balance      INTEGER NOT NULL,
    posted_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX entries_by_account ON entries (account, id);
CREATE INDEX entries_by_day ON entries (account, currency, posted_at);
CREATE INDEX entries_by_transfer ON entries (transfer_id);

-- History is append-only: a correction is a new, reversing posting.
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;

-- What each account sent per UTC day (ms of its midnight) and currency, in transfers and red
-- packets: the daily limit is checked against this counter inside the posting's transaction
-- (O(1), where summing the day's entries would grow with every payment).
CREATE TABLE daily_sent (
    account   INTEGER NOT NULL,
    currency  TEXT    NOT NULL,
    day       INTEGER NOT NULL,
    sent      INTEGER NOT NULL CHECK (sent > 0),
    PRIMARY KEY (account, currency, day)
) STRICT, WITHOUT ROWID;

-- A red packet: its funding transfer has the same id. The shares are drawn when it is made
-- (comma-separated, claimed in order); escrow holds what is left until it is emptied or refunded.
CREATE TABLE red_packets (
    id           TEXT    PRIMARY KEY REFERENCES transfers (id),
    conv         INTEGER NOT NULL,
    sender       INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    total        INTEGER NOT NULL CHECK (total > 0),
    shares       TEXT    NOT NULL,
    share_count  INTEGER NOT NULL CHECK (share_count BETWEEN 1 AND total),
    split        TEXT    NOT NULL CHECK (split IN ('random', 'equal')),
    claimed      INTEGER NOT NULL DEFAULT 0,
    remaining    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'emptied', 'refunded')),
    CHECK (claimed BETWEEN 0 AND share_count),
    CHECK (remaining BETWEEN 0 AND total),
    CHECK ((state = 'emptied') = (claimed = share_count AND state != 'refunded'))
) STRICT;
CREATE INDEX red_packets_open ON red_packets (expires_at) WHERE state = 'open';
CREATE TRIGGER red_packets_closed_once BEFORE UPDATE ON red_packets WHEN OLD.state != 'open'
BEGIN SELECT RAISE(ABORT, 'a red packet is emptied or refunded once'); END;

-- At most one claim per account and packet, and one per share.
CREATE TABLE red_packet_claims (
    packet       TEXT    NOT NULL REFERENCES red_packets (id),
    account      INTEGER NOT NULL,
    n            INTEGER NOT NULL CHECK (n >= 1),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    transfer_id  TEXT    NOT NULL UNIQUE REFERENCES transfers (id),
    PRIMARY KEY (packet, account),
    UNIQUE (packet, n)
) STRICT, WITHOUT ROWID;

-- Requests to pay: open until paid, declined, cancelled or expired, exactly once.
CREATE TABLE pay_requests (
    id           TEXT    PRIMARY KEY,
    conv         INTEGER NOT NULL,
    payee        INTEGER NOT NULL,
    payer        INTEGER NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'open'
                 CHECK (state IN ('open', 'paid', 'declined', 'cancelled', 'expired')),
    transfer_id  TEXT    UNIQUE REFERENCES transfers (id),
    closed_by    INTEGER,
    closed_at    INTEGER,
    closed_seq   INTEGER,
    CHECK ((state = 'paid') = (transfer_id IS NOT NULL)),
    CHECK ((state = 'open') = (closed_at IS NULL))
) STRICT;
CREATE INDEX pay_requests_open ON pay_requests (expires_at) WHERE state = 'open';
CREATE TRIGGER pay_requests_settled_once BEFORE UPDATE ON pay_requests WHEN OLD.state != 'open'
BEGIN SELECT RAISE(ABORT, 'a request is settled once'); END;

-- The server's payment receipt key (Ed25519 seed), made once.
CREATE TABLE server_keys (
    name  TEXT PRIMARY KEY,
    seed  BLOB NOT NULL CHECK (length(seed) = 32)
) STRICT;
