-- chatd schema, version 7: lookalike handles (SPEC.md 8.6). An index on each handle's skeleton
-- (chatd/core/handles.py: SKELETON_SQL is this expression, ``skeleton`` the same in Python), so
-- "is there an account whose handle looks like this one" is one index lookup, for the accounts
-- from before this migration too. Not unique: handles that already looked alike keep existing.
CREATE INDEX accounts_skeleton ON accounts
    ((replace(replace(replace(replace(replace(handle, '_', ''), '.', ''), '0', 'o'), '1', 'l'), 'm', 'rn')));
