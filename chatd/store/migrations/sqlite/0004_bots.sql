-- chatd schema, version 4 (SQLite): bots (SPEC.md section 16).
-- messages.to_accounts: the accounts a message is addressed to (send.to); messages.withheld: the
-- bot members it was withheld from when it was committed (access 'addressed', not in to, not the
-- sender). Both are big-endian u64s, ascending, NULL when empty (almost every message).
ALTER TABLE messages ADD COLUMN to_accounts BLOB;
ALTER TABLE messages ADD COLUMN withheld BLOB;

-- A bot member's access; always 'all' for users. Members from before this version keep 'all'
-- (bots in them received everything until now).
ALTER TABLE members ADD COLUMN access TEXT NOT NULL DEFAULT 'all'
    CHECK (access IN ('addressed', 'all'));
CREATE INDEX members_addressed ON members (conv_id, account_id) WHERE access = 'addressed';

-- A bot's profile: msgpack of {commands, manifest} (chatproto.bots.StoredProfile).
CREATE TABLE bot_profiles (
    account_id  INTEGER PRIMARY KEY REFERENCES accounts (id),
    body        BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL
);
