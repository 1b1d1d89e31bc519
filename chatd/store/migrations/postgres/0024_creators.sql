-- chatd schema, version 24 (PostgreSQL): creators paid through the ledger (SPEC.md
-- 15.12-15.14). The SQLite migration of the same number describes each table.

-- 1. Two more posting types, ``tip`` and ``charge``, whose receipts are creator_receipts rows
-- (no conversation message): the two CHECKs that name the types are replaced.
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'transfers'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%mint%'
    LOOP
        EXECUTE format('ALTER TABLE transfers DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE transfers ADD CONSTRAINT transfers_type_check
    CHECK (type IN ('transfer', 'red_packet', 'claim', 'refund', 'mint', 'tip', 'charge'));
ALTER TABLE transfers ADD CONSTRAINT transfers_receipt_check
    CHECK ((type IN ('mint', 'tip', 'charge')) = (conv IS NULL) AND (conv IS NULL) = (seq IS NULL));

CREATE TABLE creator_receipts (
    transfer_id  TEXT    PRIMARY KEY REFERENCES transfers (id),
    type         TEXT    NOT NULL CHECK (type IN ('tip', 'charge')),
    ref          TEXT    NOT NULL,
    n            BIGINT  NOT NULL DEFAULT 0,
    payer        BIGINT  NOT NULL,
    payee        BIGINT  NOT NULL,
    amount       BIGINT  NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL,
    channel      BIGINT  NOT NULL,
    post         BIGINT  NOT NULL DEFAULT 0,
    body         BYTEA   NOT NULL,
    UNIQUE (ref, n)
);
CREATE FUNCTION creator_receipts_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'receipts are append-only'; END $$;
CREATE TRIGGER creator_receipts_no_update BEFORE UPDATE OR DELETE ON creator_receipts
FOR EACH ROW EXECUTE FUNCTION creator_receipts_append_only();

CREATE TABLE pub_tip_totals (
    channel   BIGINT  NOT NULL,
    seq       BIGINT  NOT NULL,
    currency  TEXT    NOT NULL,
    count     BIGINT  NOT NULL,
    total     BIGINT  NOT NULL,
    PRIMARY KEY (channel, seq, currency)
);

CREATE TABLE channel_prices (
    channel     BIGINT  PRIMARY KEY,
    amount      BIGINT  NOT NULL CHECK (amount > 0),
    currency    TEXT    NOT NULL,
    period      BIGINT  NOT NULL CHECK (period > 0),
    updated_at  BIGINT  NOT NULL
);

-- mandate_id is COLLATE "C" so that paging by it orders as SQLite does (by bytes).
CREATE TABLE subscriptions (
    mandate_id      TEXT    COLLATE "C" PRIMARY KEY,
    subscriber      BIGINT  NOT NULL,
    owner           BIGINT  NOT NULL,
    channel         BIGINT  NOT NULL,
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    period          BIGINT  NOT NULL CHECK (period > 0),
    periods         BIGINT  NOT NULL CHECK (periods > 0),
    intent_hash     BYTEA   NOT NULL,
    intent_expires  BIGINT  NOT NULL,
    device          BIGINT  NOT NULL,
    sig             BYTEA   NOT NULL,
    state           TEXT    NOT NULL
                    CHECK (state IN ('active', 'past_due', 'lapsed', 'cancelled', 'completed')),
    charged         BIGINT  NOT NULL CHECK (charged BETWEEN 1 AND periods),
    paid_through    BIGINT  NOT NULL,
    next_charge_at  BIGINT  NOT NULL,
    due_since       BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    CHECK ((state IN ('active', 'past_due')) = (next_charge_at > 0))
);
CREATE INDEX subscriptions_due ON subscriptions (next_charge_at) WHERE next_charge_at > 0;
CREATE INDEX subscriptions_channel ON subscriptions (channel, mandate_id);
CREATE INDEX subscriptions_subscriber ON subscriptions (subscriber, mandate_id);
CREATE UNIQUE INDEX subscriptions_live ON subscriptions (subscriber, channel)
    WHERE state IN ('active', 'past_due');

CREATE TABLE subscription_charges (
    mandate      TEXT    COLLATE "C" NOT NULL REFERENCES subscriptions (mandate_id),
    n            BIGINT  NOT NULL CHECK (n >= 1),
    transfer_id  TEXT    NOT NULL UNIQUE REFERENCES transfers (id),
    starts       BIGINT  NOT NULL,
    ends         BIGINT  NOT NULL,
    PRIMARY KEY (mandate, n)
);

ALTER TABLE pub_posts ADD COLUMN paid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pub_post_versions ADD COLUMN paid BIGINT NOT NULL DEFAULT 0;
