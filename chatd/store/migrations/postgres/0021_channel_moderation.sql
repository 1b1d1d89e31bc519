-- chatd schema, version 21 (PostgreSQL): moderation of public channels' comments and view
-- counts of posts (SPEC.md 20.9).
-- ``pub_channels.slow_mode``: seconds a non-admin waits between two comments in the channel
-- (0: off). ``pub_commenters``: one row per (channel, account) that commented, reacted or was
-- banned there: the time of its last comment (slow mode) and its ban (``banned``, ``ban_until``
-- 0: no end). A comment, a reaction and a ban of the same account lock this one row, so a
-- comment racing a ban is ordered before or after it on every node.
-- ``pub_posts.views``: the post's count of distinct viewers, kept with ``pub_views``, which
-- holds ONE 16-byte keyed hash per (viewer, post) and nothing else: no account id, no time.
ALTER TABLE pub_channels ADD COLUMN slow_mode BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pub_posts ADD COLUMN views BIGINT NOT NULL DEFAULT 0;

CREATE TABLE pub_commenters (
    channel       BIGINT NOT NULL,
    account       BIGINT NOT NULL,
    last_comment  BIGINT NOT NULL DEFAULT 0,
    banned        BIGINT NOT NULL DEFAULT 0,
    ban_until     BIGINT NOT NULL DEFAULT 0,
    banned_by     BIGINT NOT NULL DEFAULT 0,
    banned_at     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, account)
);
CREATE INDEX pub_commenters_banned ON pub_commenters (channel, account) WHERE banned = 1;

CREATE TABLE pub_views (
    channel  BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    tag      BYTEA  NOT NULL CHECK (octet_length(tag) = 16),
    PRIMARY KEY (channel, seq, tag)
);

-- A ban that deletes the account's comments finds them without reading the channel's others.
CREATE INDEX pub_comments_author ON pub_comments (channel, author);
