-- chatd schema, version 17: the directory's second index (SPEC.md 20.2). A search walks the
-- driving word's prefix range of ``pub_terms``' primary key (term, channel) in that order and
-- asks, for each channel it meets, "has this channel a word with that prefix" (another query
-- word, or an earlier term of the same prefix: a channel is listed once): one probe here.
CREATE INDEX pub_terms_channel ON pub_terms (channel, term);
