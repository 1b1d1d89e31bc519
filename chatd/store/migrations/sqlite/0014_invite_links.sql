-- chatd schema, version 14 (SQLite): invite links and join requests (SPEC.md 19).
-- ``invite_links``: one row per link. ``selector`` is the random half of the token the server
-- finds the row by; the other half is an HMAC under the 'invite_links' secret of
-- ``server_keys``, never stored: no row holds a usable token. ``uses`` counts joins and join
-- requests made through it; it is raised in the join's own transaction, under the
-- conversation's lock, so ``max_uses`` holds exactly on every node.
CREATE TABLE invite_links (
    id          INTEGER PRIMARY KEY,
    conv_id     INTEGER NOT NULL,
    selector    BLOB    NOT NULL UNIQUE CHECK (length(selector) = 8),
    creator     INTEGER NOT NULL,
    name        TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL DEFAULT 0,
    max_uses    INTEGER NOT NULL DEFAULT 0,
    uses        INTEGER NOT NULL DEFAULT 0 CHECK (max_uses = 0 OR uses <= max_uses),
    approval    INTEGER NOT NULL DEFAULT 0,
    revoked_at  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX invite_links_by_conv ON invite_links (conv_id, id);

-- A pending join request: ``account_id`` asked to join ``conv_id`` through link ``link_id``;
-- an owner or admin approves (the account joins) or declines (the row goes).
CREATE TABLE join_requests (
    conv_id     INTEGER NOT NULL,
    account_id  INTEGER NOT NULL,
    link_id     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (conv_id, account_id)
) STRICT, WITHOUT ROWID;
