-- chatd schema, version 18: comments and reactions under public posts (SPEC.md 20.6).
-- ``pub_comments``: one row per comment (a deleted one keeps its row, content emptied);
-- ``reply_to`` is the comment it answers (0: the post). ``pub_reactions``: one row per
-- (post, account, emoji); ``pub_reaction_counts`` keeps each post's count per emoji in the same
-- transaction, so reading a post's counts reads a few rows, never one per reactor.
CREATE TABLE pub_comments (
    id        INTEGER PRIMARY KEY,
    channel   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    author    INTEGER NOT NULL,
    reply_to  INTEGER NOT NULL DEFAULT 0,
    ts        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    content   BLOB    NOT NULL,
    deleted   INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX pub_comments_post ON pub_comments (channel, seq, id);

CREATE TABLE pub_reactions (
    channel  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    account  INTEGER NOT NULL,
    emoji    TEXT    NOT NULL,
    PRIMARY KEY (channel, seq, account, emoji)
) STRICT, WITHOUT ROWID;

CREATE TABLE pub_reaction_counts (
    channel  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    emoji    TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (channel, seq, emoji)
) STRICT, WITHOUT ROWID;
