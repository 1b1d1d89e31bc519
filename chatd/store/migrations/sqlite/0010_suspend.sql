-- chatd schema, version 10: accounts an operator suspended (``chatd admin suspend``, SPEC.md
-- 6.1). ``suspended_at`` is when (ms; 0: not suspended); every node looks for suspensions newer
-- than the last it saw, through the partial index, and closes those accounts' connections.
ALTER TABLE accounts ADD COLUMN suspended_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX accounts_suspended ON accounts (suspended_at) WHERE suspended_at > 0;
