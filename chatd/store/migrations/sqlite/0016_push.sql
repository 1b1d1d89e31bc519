-- chatd schema, version 16: Web Push subscriptions (SPEC.md 21), at most one per device: where
-- the server sends a push when the device's account is offline, and the device's keys to
-- encrypt it to (RFC 8291). show_conv: the user allows pushes to name the conversation.
CREATE TABLE push_subscriptions (
    device_id   INTEGER NOT NULL PRIMARY KEY,
    account_id  INTEGER NOT NULL,
    endpoint    TEXT    NOT NULL,
    p256dh      BLOB    NOT NULL,
    auth        BLOB    NOT NULL,
    show_conv   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX push_subscriptions_by_account ON push_subscriptions (account_id);
