-- chatd schema, version 12: accounts banned from a conversation by an owner or admin (``remove``
-- with ``ban``, SPEC.md 18.8): they cannot be invited back, nor accept an earlier invitation,
-- until ``unban``.
CREATE TABLE bans (
    conv_id     BIGINT NOT NULL,
    account_id  BIGINT NOT NULL,
    actor       BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (conv_id, account_id)
);
