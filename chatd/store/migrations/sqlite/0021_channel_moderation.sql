-- chatd schema, version 21: moderation of public channels' comments and view counts of posts
-- (SPEC.md 20.9).
-- ``pub_channels.slow_mode``: seconds a non-admin waits between two comments in the channel
-- (0: off). ``pub_commenters``: one row per (channel, account) that commented, reacted or was
-- banned there: the time of its last comment (slow mode) and its ban (``banned``, ``ban_until``
-- 0: no end). A comment, a reaction and a ban of the same account lock this one row, so a
-- comment racing a ban is ordered before or after it on every node.
-- ``pub_posts.views``: the post's count of distinct viewers, kept with ``pub_views``, which
-- holds ONE 16-byte keyed hash per (viewer, post) and nothing else: no account id, no time.
ALTER TABLE pub_channels ADD COLUMN slow_mode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pub_posts ADD COLUMN views INTEGER NOT NULL DEFAULT 0;

CREATE TABLE pub_commenters (
    channel       INTEGER NOT NULL,
    account       INTEGER NOT NULL,
    last_comment  INTEGER NOT NULL DEFAULT 0,
    banned        INTEGER NOT NULL DEFAULT 0,
    ban_until     INTEGER NOT NULL DEFAULT 0,
    banned_by     INTEGER NOT NULL DEFAULT 0,
    banned_at     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, account)
) STRICT, WITHOUT ROWID;
CREATE INDEX pub_commenters_banned ON pub_commenters (channel, account) WHERE banned = 1;

CREATE TABLE pub_views (
    channel  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    tag      BLOB    NOT NULL CHECK (length(tag) = 16),
    PRIMARY KEY (channel, seq, tag)
) STRICT, WITHOUT ROWID;

-- A ban that deletes the account's comments finds them without reading the channel's others.
CREATE INDEX pub_comments_author ON pub_comments (channel, author);
