-- chatd schema, version 12: accounts banned from a conversation by an owner or admin (``remove``
-- with ``ban``, SPEC.md 18.8): they cannot be invited back, nor accept an earlier invitation,
-- until ``unban``.
CREATE TABLE bans (
    conv_id     INTEGER NOT NULL,
    account_id  INTEGER NOT NULL,
    actor       INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (conv_id, account_id)
) STRICT, WITHOUT ROWID;
