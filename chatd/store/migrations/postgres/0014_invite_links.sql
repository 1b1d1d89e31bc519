-- chatd schema, version 14 (PostgreSQL): invite links and join requests (SPEC.md 19).
-- ``invite_links``: one row per link. ``selector`` is the random half of the token the server
-- finds the row by; the other half is an HMAC under the 'invite_links' secret of
-- ``server_keys``, never stored: no row holds a usable token. ``uses`` counts joins and join
-- requests made through it; it is raised in the join's own transaction, under the
-- conversation's row lock, so ``max_uses`` holds exactly across nodes.
CREATE TABLE invite_links (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conv_id     BIGINT   NOT NULL,
    selector    BYTEA    NOT NULL UNIQUE CHECK (octet_length(selector) = 8),
    creator     BIGINT   NOT NULL,
    name        TEXT     NOT NULL DEFAULT '',
    created_at  BIGINT   NOT NULL,
    expires_at  BIGINT   NOT NULL DEFAULT 0,
    max_uses    BIGINT   NOT NULL DEFAULT 0,
    uses        BIGINT   NOT NULL DEFAULT 0 CHECK (max_uses = 0 OR uses <= max_uses),
    approval    SMALLINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT   NOT NULL DEFAULT 0
);
CREATE INDEX invite_links_by_conv ON invite_links (conv_id, id);

CREATE TABLE join_requests (
    conv_id     BIGINT NOT NULL,
    account_id  BIGINT NOT NULL,
    link_id     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (conv_id, account_id)
);
