-- chatd schema, version 23: the merged timeline (SPEC.md 20.8). ``pub_posts.created`` is the
-- server's time when the post was first stored (an edit keeps it): the timeline orders by it,
-- not by the publisher's signed ``ts`` (which may be up to 5 minutes off), so a new post sorts
-- after every post stored before it on this clock. Posts stored before this version take
-- their signed time. ``pub_posts_created`` lets a timeline page find each followed channel's
-- newest post below the cursor with one index seek (fan-out on read: nothing is written per
-- follower).
ALTER TABLE pub_posts ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
UPDATE pub_posts SET created = ts;
CREATE INDEX pub_posts_created ON pub_posts (channel, created, seq);
-- During a rolling upgrade a node still on version 22 stores new posts without ``created`` (0):
-- they take their signed time, as the posts stored before this version did, instead of
-- sorting below every other post of the timeline.
CREATE TRIGGER pub_posts_created_by_old_nodes AFTER INSERT ON pub_posts WHEN NEW.created = 0
BEGIN
    UPDATE pub_posts SET created = NEW.ts WHERE channel = NEW.channel AND seq = NEW.seq;
END;
