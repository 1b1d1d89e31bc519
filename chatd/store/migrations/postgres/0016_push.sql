-- chatd schema, version 16: Web Push subscriptions (SPEC.md 21), at most one per device: where
-- the server sends a push when the device's account is offline, and the device's keys to
-- encrypt it to (RFC 8291). show_conv: the user allows pushes to name the conversation.
CREATE TABLE push_subscriptions (
    device_id   BIGINT   NOT NULL PRIMARY KEY,
    account_id  BIGINT   NOT NULL,
    endpoint    TEXT     NOT NULL,
    p256dh      BYTEA    NOT NULL,
    auth        BYTEA    NOT NULL,
    show_conv   SMALLINT NOT NULL DEFAULT 0,
    created_at  BIGINT   NOT NULL
);
CREATE INDEX push_subscriptions_by_account ON push_subscriptions (account_id);
