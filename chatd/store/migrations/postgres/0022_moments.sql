-- chatd schema, version 22 (PostgreSQL): Moments (SPEC.md 22), posts to an author's chosen contacts whose
-- bodies, comments and likes are end-to-end encrypted: the server keeps opaque bytes.
-- ``moments``: one row per moment, stored once whatever its audience; ``audience`` counts
-- the accounts it was posted to (the author not counted); ``device`` is the author's device
-- that encrypted it (its receivers find the key by it, E2E.md 18).
-- ``moment_audience``: one row per (moment, account) the moment was posted to, the author's
-- own row included (so "the moments a viewer may read" is one walk of
-- ``moment_audience_viewer``, newest first); ``ts`` is the moment's, copied for that order.
-- ``moment_comments``: comments and likes (``kind``), one like per (moment, author).
-- Deletes remove rows (the bytes leave the file: secure_delete); ids are never reused.
CREATE TABLE moments (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author    BIGINT  NOT NULL REFERENCES accounts (id),
    device    BIGINT  NOT NULL,
    ts        BIGINT  NOT NULL,
    audience  BIGINT  NOT NULL,
    body      BYTEA   NOT NULL
);

CREATE TABLE moment_audience (
    moment   BIGINT  NOT NULL REFERENCES moments (id),
    account  BIGINT  NOT NULL REFERENCES accounts (id),
    ts       BIGINT  NOT NULL,
    PRIMARY KEY (moment, account)
);
CREATE INDEX moment_audience_viewer ON moment_audience (account, ts DESC, moment DESC);

CREATE TABLE moment_comments (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    moment    BIGINT  NOT NULL REFERENCES moments (id),
    author    BIGINT  NOT NULL REFERENCES accounts (id),
    device    BIGINT  NOT NULL,
    reply_to  BIGINT  NOT NULL DEFAULT 0,
    kind      TEXT    NOT NULL CHECK (kind IN ('comment', 'like')),
    ts        BIGINT  NOT NULL,
    body      BYTEA   NOT NULL
);
CREATE INDEX moment_comments_moment ON moment_comments (moment, id);
CREATE UNIQUE INDEX moment_likes ON moment_comments (moment, author) WHERE kind = 'like';
