-- chatd schema, version 15: public channels and their signed posts (SPEC.md 20).
-- ``pub_channels``: one row per public channel; ``handle`` and its lookalike ``skeleton`` are
-- unique among channels; ``last_seq`` is the seq of its newest post; ``followers`` a counter
-- kept by follow/unfollow. ``pub_admins``: who may publish (the owner from the start).
-- ``pub_follows``: one row per follower (never read on the publish path: posts are stored once
-- and read by followers; live pushes go to connected followers only).
-- ``pub_posts``: the current version of each post; ``pub_post_versions``: the earlier ones.
-- ``pub_terms``: the directory index, one row per (lowercased word, channel); a search is a
-- range scan of its primary key (a word prefix), so it stays an index walk at any size.
CREATE TABLE pub_channels (
    id          INTEGER PRIMARY KEY,
    handle      TEXT    NOT NULL UNIQUE,
    skeleton    TEXT    NOT NULL UNIQUE,
    title       TEXT    NOT NULL,
    about       TEXT    NOT NULL DEFAULT '',
    owner       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0,
    followers   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE pub_admins (
    channel  INTEGER NOT NULL,
    account  INTEGER NOT NULL,
    PRIMARY KEY (channel, account)
) STRICT, WITHOUT ROWID;
CREATE INDEX pub_admins_account ON pub_admins (account);

CREATE TABLE pub_follows (
    account  INTEGER NOT NULL,
    channel  INTEGER NOT NULL,
    since    INTEGER NOT NULL,
    PRIMARY KEY (account, channel)
) STRICT, WITHOUT ROWID;
CREATE INDEX pub_follows_channel ON pub_follows (channel);

CREATE TABLE pub_posts (
    channel  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    ver      INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    author   INTEGER NOT NULL,
    device   INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    content  BLOB    NOT NULL,
    sig      BLOB    NOT NULL CHECK (length(sig) = 64),
    PRIMARY KEY (channel, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE pub_post_versions (
    channel  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    ver      INTEGER NOT NULL,
    ts       INTEGER NOT NULL,
    author   INTEGER NOT NULL,
    device   INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    content  BLOB    NOT NULL,
    sig      BLOB    NOT NULL CHECK (length(sig) = 64),
    PRIMARY KEY (channel, seq, ver)
) STRICT, WITHOUT ROWID;

CREATE TABLE pub_terms (
    term     TEXT    NOT NULL,
    channel  INTEGER NOT NULL,
    PRIMARY KEY (term, channel)
) STRICT, WITHOUT ROWID;
