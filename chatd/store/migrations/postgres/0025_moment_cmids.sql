-- chatd schema, version 25 (PostgreSQL): client ids of Moments, comments and likes (SPEC.md 22.1,
-- "Resends"). A client names each post_moment / comment_moment / like_moment with a cmid of its
-- own, unique per author; a resend after a lost answer carries the same one and is answered with
-- the stored row instead of storing a second. NULL: a frame without one (no idempotency, as
-- before). The unique indexes are the backstop of two resends racing through two nodes: the
-- loser's insert fails, its batch runs again and finds the winner (NULLs never collide).
ALTER TABLE moments ADD COLUMN cmid TEXT;
CREATE UNIQUE INDEX moments_cmid ON moments (author, cmid);
ALTER TABLE moment_comments ADD COLUMN cmid TEXT;
CREATE UNIQUE INDEX moment_comments_cmid ON moment_comments (author, cmid);
