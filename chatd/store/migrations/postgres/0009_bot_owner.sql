-- chatd schema, version 9: a bot account's owner (issue 14.5, SPEC.md 6.1). The account whose
-- device signed the bot's registration; 0 for users and for bots that declared themselves
-- (registered before owners signed, or without an owner: they get a user's frame budget).
ALTER TABLE accounts ADD COLUMN owner_id BIGINT NOT NULL DEFAULT 0;
