-- chatd schema, version 18: comments and reactions under public posts (SPEC.md 20.6).
-- ``pub_comments``: one row per comment (a deleted one keeps its row, content emptied);
-- ``reply_to`` is the comment it answers (0: the post). ``pub_reactions``: one row per
-- (post, account, emoji); ``pub_reaction_counts`` keeps each post's count per emoji in the same
-- transaction, so reading a post's counts reads a few rows, never one per reactor.
CREATE TABLE pub_comments (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel   BIGINT  NOT NULL,
    seq       BIGINT  NOT NULL,
    author    BIGINT  NOT NULL,
    reply_to  BIGINT  NOT NULL DEFAULT 0,
    ts        BIGINT  NOT NULL,
    kind      TEXT    NOT NULL,
    content   BYTEA   NOT NULL,
    deleted   BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX pub_comments_post ON pub_comments (channel, seq, id);

CREATE TABLE pub_reactions (
    channel  BIGINT  NOT NULL,
    seq      BIGINT  NOT NULL,
    account  BIGINT  NOT NULL,
    emoji    TEXT    NOT NULL,
    PRIMARY KEY (channel, seq, account, emoji)
);

CREATE TABLE pub_reaction_counts (
    channel  BIGINT  NOT NULL,
    seq      BIGINT  NOT NULL,
    emoji    TEXT    NOT NULL,
    count    BIGINT  NOT NULL,
    PRIMARY KEY (channel, seq, emoji)
);
