-- chatd schema, version 15: public channels and their signed posts (SPEC.md 20).
-- ``pub_channels``: one row per public channel; ``handle`` and its lookalike ``skeleton`` are
-- unique among channels; ``last_seq`` is the seq of its newest post; ``followers`` a counter
-- kept by follow/unfollow. ``pub_admins``: who may publish (the owner from the start).
-- ``pub_follows``: one row per follower (never read on the publish path: posts are stored once
-- and read by followers; live pushes go to connected followers only).
-- ``pub_posts``: the current version of each post; ``pub_post_versions``: the earlier ones.
-- ``pub_terms``: the directory index, one row per (lowercased word, channel), in byte order
-- (COLLATE "C", as SQLite compares) so a word prefix is one range; a search is a
-- range scan of its primary key (a word prefix), so it stays an index walk at any size.
CREATE TABLE pub_channels (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handle      TEXT    NOT NULL UNIQUE,
    skeleton    TEXT    NOT NULL UNIQUE,
    title       TEXT    NOT NULL,
    about       TEXT    NOT NULL DEFAULT '',
    owner       BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    last_seq    BIGINT  NOT NULL DEFAULT 0,
    followers   BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE pub_admins (
    channel  BIGINT  NOT NULL,
    account  BIGINT  NOT NULL,
    PRIMARY KEY (channel, account)
);
CREATE INDEX pub_admins_account ON pub_admins (account);

CREATE TABLE pub_follows (
    account  BIGINT  NOT NULL,
    channel  BIGINT  NOT NULL,
    since    BIGINT  NOT NULL,
    PRIMARY KEY (account, channel)
);
CREATE INDEX pub_follows_channel ON pub_follows (channel);

CREATE TABLE pub_posts (
    channel  BIGINT  NOT NULL,
    seq      BIGINT  NOT NULL,
    ver      BIGINT  NOT NULL,
    ts       BIGINT  NOT NULL,
    author   BIGINT  NOT NULL,
    device   BIGINT  NOT NULL,
    kind     TEXT    NOT NULL,
    content  BYTEA   NOT NULL,
    sig      BYTEA   NOT NULL CHECK (octet_length(sig) = 64),
    PRIMARY KEY (channel, seq)
);

CREATE TABLE pub_post_versions (
    channel  BIGINT  NOT NULL,
    seq      BIGINT  NOT NULL,
    ver      BIGINT  NOT NULL,
    ts       BIGINT  NOT NULL,
    author   BIGINT  NOT NULL,
    device   BIGINT  NOT NULL,
    kind     TEXT    NOT NULL,
    content  BYTEA   NOT NULL,
    sig      BYTEA   NOT NULL CHECK (octet_length(sig) = 64),
    PRIMARY KEY (channel, seq, ver)
);

CREATE TABLE pub_terms (
    term     TEXT    COLLATE "C" NOT NULL,
    channel  BIGINT  NOT NULL,
    PRIMARY KEY (term, channel)
);
