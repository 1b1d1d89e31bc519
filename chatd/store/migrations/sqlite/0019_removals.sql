-- chatd schema, version 19: how many members have left or been removed from each conversation.
-- Every message is published with the count read when it was appended, so a node that gets a
-- message following a removal it has not applied yet re-reads the membership before delivering
-- it (chatd.hub; issue 14.7: Redis orders envelopes per publisher only).
ALTER TABLE conversations ADD COLUMN removals INTEGER NOT NULL DEFAULT 0;
