-- chatd schema, version 3 (PostgreSQL): wallets, the double-entry ledger, red packets and
-- requests to pay (SPEC.md section 15). Same tables and rules as the SQLite schema. Money is
-- BIGINT minor units (an overflow is an error, never a rounding). Account -1 is issuance and -2
-- escrow (the system accounts); every other account is accounts.id. Several nodes write here:
-- rows are locked conversation first, then request or packet, then wallets in (account,
-- currency) order (chatd/store/ledger_postgres.py).

CREATE TABLE wallets (
    account   BIGINT NOT NULL,
    currency  TEXT   NOT NULL CHECK (length(currency) = 3),
    balance   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account, currency),
    -- No overdraft, enforced here and not only in Python: only issuance may go below zero.
    CONSTRAINT wallets_no_overdraft CHECK (balance >= 0 OR account = -1)
);

CREATE TABLE transfers (
    id           TEXT    PRIMARY KEY,
    type         TEXT    NOT NULL CHECK (type IN ('transfer', 'red_packet', 'claim', 'refund', 'mint')),
    debit        BIGINT  NOT NULL,
    credit       BIGINT  NOT NULL,
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    conv         BIGINT,
    seq          BIGINT,
    intent_hash  BYTEA   NOT NULL,
    request_id   TEXT,
    posted_at    BIGINT  NOT NULL,
    note         TEXT    NOT NULL DEFAULT '',
    CHECK (debit <> credit),
    CHECK ((type = 'mint') = (conv IS NULL) AND (conv IS NULL) = (seq IS NULL))
);

CREATE TABLE entries (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id  TEXT    NOT NULL REFERENCES transfers (id),
    account      BIGINT  NOT NULL,
    currency     TEXT    NOT NULL,
    amount       BIGINT  NOT NULL CHECK (amount <> 0),
    balance      BIGINT  NOT NULL,
    posted_at    BIGINT  NOT NULL
);
CREATE INDEX entries_by_account ON entries (account, id);
CREATE INDEX entries_by_day ON entries (account, currency, posted_at);
CREATE INDEX entries_by_transfer ON entries (transfer_id);

-- History is append-only: a correction is a new, reversing posting.
CREATE FUNCTION chatd_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chatd: % is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION chatd_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION chatd_append_only();
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION chatd_append_only();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION chatd_append_only();

-- What each account sent per UTC day (ms of its midnight) and currency, in transfers and red
-- packets: the daily limit is checked against this counter inside the posting's transaction
-- (O(1), where summing the day's entries would grow with every payment).
CREATE TABLE daily_sent (
    account   BIGINT NOT NULL,
    currency  TEXT    NOT NULL,
    day       BIGINT NOT NULL,
    sent      BIGINT NOT NULL CHECK (sent > 0),
    PRIMARY KEY (account, currency, day)
);

CREATE TABLE red_packets (
    id           TEXT    PRIMARY KEY REFERENCES transfers (id),
    conv         BIGINT  NOT NULL,
    sender       BIGINT  NOT NULL,
    currency     TEXT    NOT NULL,
    total        BIGINT  NOT NULL CHECK (total > 0),
    shares       TEXT    NOT NULL,
    share_count  INTEGER NOT NULL CHECK (share_count BETWEEN 1 AND total),
    split        TEXT    NOT NULL CHECK (split IN ('random', 'equal')),
    claimed      INTEGER NOT NULL DEFAULT 0,
    remaining    BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'emptied', 'refunded')),
    CHECK (claimed BETWEEN 0 AND share_count),
    CHECK (remaining BETWEEN 0 AND total),
    CHECK ((state = 'emptied') = (claimed = share_count AND state <> 'refunded'))
);
CREATE INDEX red_packets_open ON red_packets (expires_at) WHERE state = 'open';

CREATE FUNCTION chatd_closed_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chatd: a % row leaves its open state once', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER red_packets_closed_once BEFORE UPDATE ON red_packets
    FOR EACH ROW WHEN (OLD.state <> 'open') EXECUTE FUNCTION chatd_closed_once();

CREATE TABLE red_packet_claims (
    packet       TEXT    NOT NULL REFERENCES red_packets (id),
    account      BIGINT  NOT NULL,
    n            INTEGER NOT NULL CHECK (n >= 1),
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    transfer_id  TEXT    NOT NULL UNIQUE REFERENCES transfers (id),
    PRIMARY KEY (packet, account),
    UNIQUE (packet, n)
);

CREATE TABLE pay_requests (
    id           TEXT    PRIMARY KEY,
    conv         BIGINT  NOT NULL,
    payee        BIGINT  NOT NULL,
    payer        BIGINT  NOT NULL,
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    expires_at   BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    seq          BIGINT  NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'open'
                 CHECK (state IN ('open', 'paid', 'declined', 'cancelled', 'expired')),
    transfer_id  TEXT    UNIQUE REFERENCES transfers (id),
    closed_by    BIGINT,
    closed_at    BIGINT,
    closed_seq   BIGINT,
    CHECK ((state = 'paid') = (transfer_id IS NOT NULL)),
    CHECK ((state = 'open') = (closed_at IS NULL))
);
CREATE INDEX pay_requests_open ON pay_requests (expires_at) WHERE state = 'open';
CREATE TRIGGER pay_requests_settled_once BEFORE UPDATE ON pay_requests
    FOR EACH ROW WHEN (OLD.state <> 'open') EXECUTE FUNCTION chatd_closed_once();

CREATE TABLE server_keys (
    name  TEXT  PRIMARY KEY,
    seed  BYTEA NOT NULL CHECK (octet_length(seed) = 32)
);
