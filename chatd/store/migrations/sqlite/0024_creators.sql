-- sqlite: rebuilds tables (foreign keys are off while this runs, then checked: migrate.py)
-- chatd schema, version 24 (SQLite): creators paid through the ledger (SPEC.md 15.12-15.14).
--
-- 1. ``transfers`` learns two posting types, ``tip`` and ``charge``, which have no receipt
-- message (a public channel is not a conversation): their signed receipt is a row of
-- ``creator_receipts``. SQLite cannot change a CHECK in place, so the table is rebuilt (its
-- rows copied into a new table that takes its name; entries, red_packets, ... keep referring
-- to ``transfers``), and its append-only triggers are made again.
CREATE TABLE transfers_0024 (
    id           TEXT    PRIMARY KEY,
    type         TEXT    NOT NULL
                 CHECK (type IN ('transfer', 'red_packet', 'claim', 'refund', 'mint', 'tip', 'charge')),
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
    -- Postings in a conversation have their receipt message (conv, seq); top-ups have no
    -- receipt, tips and charges have theirs in creator_receipts.
    CHECK ((type IN ('mint', 'tip', 'charge')) = (conv IS NULL) AND (conv IS NULL) = (seq IS NULL))
) STRICT;
INSERT INTO transfers_0024 SELECT * FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_0024 RENAME TO transfers;
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;

-- 2. The signed receipt of each tip and charge (``body``: the CreatorReceipt, msgpack), with
-- the fields the audit compares to its posting. ``ref``: the tip id, or the charge's mandate.
CREATE TABLE creator_receipts (
    transfer_id  TEXT    PRIMARY KEY REFERENCES transfers (id),
    type         TEXT    NOT NULL CHECK (type IN ('tip', 'charge')),
    ref          TEXT    NOT NULL,
    n            INTEGER NOT NULL DEFAULT 0,
    payer        INTEGER NOT NULL,
    payee        INTEGER NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    channel      INTEGER NOT NULL,
    post         INTEGER NOT NULL DEFAULT 0,
    body         BLOB    NOT NULL,
    UNIQUE (ref, n)
) STRICT;
CREATE TRIGGER creator_receipts_no_update BEFORE UPDATE ON creator_receipts
BEGIN SELECT RAISE(ABORT, 'receipts are append-only'); END;

-- 3. Tips per post: a count and total per currency, kept in the tip's transaction.
CREATE TABLE pub_tip_totals (
    channel   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    currency  TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    total     INTEGER NOT NULL,
    PRIMARY KEY (channel, seq, currency)
) STRICT, WITHOUT ROWID;

-- 4. A channel's subscription price (owner only); a mandate copies it when signed.
CREATE TABLE channel_prices (
    channel     INTEGER PRIMARY KEY,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    currency    TEXT    NOT NULL,
    period      INTEGER NOT NULL CHECK (period > 0),
    updated_at  INTEGER NOT NULL
) STRICT;

-- 5. Mandates. ``charged``: periods charged so far; ``paid_through``: the end of the last one;
-- ``next_charge_at``: when the sweep next charges (0: never); ``due_since``: when the unpaid
-- period fell due (past_due). One live (active or past_due) mandate per subscriber and channel.
CREATE TABLE subscriptions (
    mandate_id      TEXT    PRIMARY KEY,
    subscriber      INTEGER NOT NULL,
    owner           INTEGER NOT NULL,
    channel         INTEGER NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    period          INTEGER NOT NULL CHECK (period > 0),
    periods         INTEGER NOT NULL CHECK (periods > 0),
    intent_hash     BLOB    NOT NULL,
    intent_expires  INTEGER NOT NULL,
    device          INTEGER NOT NULL,
    sig             BLOB    NOT NULL,
    state           TEXT    NOT NULL
                    CHECK (state IN ('active', 'past_due', 'lapsed', 'cancelled', 'completed')),
    charged         INTEGER NOT NULL CHECK (charged BETWEEN 1 AND periods),
    paid_through    INTEGER NOT NULL,
    next_charge_at  INTEGER NOT NULL,
    due_since       INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CHECK ((state IN ('active', 'past_due')) = (next_charge_at > 0))
) STRICT;
CREATE INDEX subscriptions_due ON subscriptions (next_charge_at) WHERE next_charge_at > 0;
CREATE INDEX subscriptions_channel ON subscriptions (channel, mandate_id);
CREATE INDEX subscriptions_subscriber ON subscriptions (subscriber, mandate_id);
CREATE UNIQUE INDEX subscriptions_live ON subscriptions (subscriber, channel)
    WHERE state IN ('active', 'past_due');

-- 6. One charge per mandate and period, ever: the key that makes a double charge impossible
-- however many nodes sweep.
CREATE TABLE subscription_charges (
    mandate      TEXT    NOT NULL REFERENCES subscriptions (mandate_id),
    n            INTEGER NOT NULL CHECK (n >= 1),
    transfer_id  TEXT    NOT NULL UNIQUE REFERENCES transfers (id),
    starts       INTEGER NOT NULL,
    ends         INTEGER NOT NULL,
    PRIMARY KEY (mandate, n)
) STRICT, WITHOUT ROWID;

-- 7. Paid posts: each version says whether it is for subscribers only (signed, SPEC.md 15.14).
ALTER TABLE pub_posts ADD COLUMN paid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pub_post_versions ADD COLUMN paid INTEGER NOT NULL DEFAULT 0;
