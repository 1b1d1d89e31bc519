-- chatd schema, version 4 (PostgreSQL): bots (SPEC.md section 16). Same tables as the SQLite
-- schema. messages.to_accounts: the accounts a message is addressed to (send.to); messages.withheld:
-- the bot members it was withheld from when committed (access 'addressed', not in to, not the
-- sender), decided under the conversation's row lock like the seq. Both ascending, NULL when empty.
ALTER TABLE messages ADD COLUMN to_accounts BIGINT[];
ALTER TABLE messages ADD COLUMN withheld BIGINT[];

-- A bot member's access; always 'all' for users. Members from before this version keep 'all'.
ALTER TABLE members ADD COLUMN access TEXT NOT NULL DEFAULT 'all'
    CHECK (access IN ('addressed', 'all'));
CREATE INDEX members_addressed ON members (conv_id, account_id) WHERE access = 'addressed';

-- A bot's profile: msgpack of {commands, manifest} (chatproto.bots.StoredProfile).
CREATE TABLE bot_profiles (
    account_id  BIGINT  PRIMARY KEY REFERENCES accounts (id),
    body        BYTEA   NOT NULL,
    updated_at  BIGINT  NOT NULL
);
