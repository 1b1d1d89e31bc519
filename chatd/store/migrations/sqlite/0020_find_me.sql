-- chatd schema, version 20: who may find an account by its handle (SPEC.md 18, ``lookup``).
-- Everyone by default: a stranger starts a conversation by handle, consent is the request.
ALTER TABLE privacy ADD COLUMN find_me TEXT NOT NULL DEFAULT 'everyone'
    CHECK (find_me IN ('everyone', 'contacts', 'nobody'));
