-- chatd schema, version 5 (PostgreSQL): chatd_append, a batch of client messages committed in ONE
-- round trip (PostgresStore's hot path; before, a batch cost seven: BEGIN, lock, members, cmid
-- look-up, seq update, insert, COMMIT). Called as one statement, it is its own transaction.
--
-- It does what that path did, in the same order, per message of the batch (arrays of equal
-- length, index i is message i):
-- * lock the batch's conversations, sorted by id (two nodes lock in one order: no deadlock);
-- * read the sender's role AFTER the lock (VOLATILE: every statement takes a new snapshot, so
--   it sees a membership change another node committed while we waited): the role at commit;
-- * refuse (kind, role) pairs in a_refused ('channel member': the store passes the pairs
--   chatd.core.rules.check_send refuses, so the rule stays written once, in Python);
-- * look the cmid up after the lock (a resend through another node finds the first row, and a
--   repeat within the batch finds the row inserted a moment ago): same content is a duplicate,
--   other content a conflict;
-- * otherwise take the next seq from the locked counter, compute the bots it is withheld from
--   (chatd.core.rules.withheld_from: the members with access 'addressed' but the sender and the
--   ones in to; nothing for the kinds in a_always) and insert it.
-- The counters are written back once per conversation at the end. One row out per message, in
-- order: r_outcome is 'new', 'duplicate', 'absent' (no such conversation or not a member),
-- 'refused' (r_kind and r_role say why) or 'conflict'.
CREATE FUNCTION chatd_append(
    a_conv BIGINT[], a_sender BIGINT[], a_device BIGINT[], a_cmid TEXT[], a_kind TEXT[],
    a_body BYTEA[], a_ts BIGINT[], a_to TEXT[], a_refused TEXT[], a_always TEXT[],
    OUT r_outcome TEXT, OUT r_seq BIGINT, OUT r_ts BIGINT, OUT r_withheld BIGINT[],
    OUT r_kind TEXT, OUT r_role TEXT
) RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ids BIGINT[];
    kinds TEXT[];
    last BIGINT[];
    first BIGINT[];
    j INT;
    to_ BIGINT[];
    prior RECORD;
BEGIN
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}'),
           coalesce(array_agg(c.kind ORDER BY c.id), '{}'),
           coalesce(array_agg(c.last_seq ORDER BY c.id), '{}')
      INTO ids, kinds, last
      FROM (SELECT id, kind, last_seq FROM conversations WHERE id = ANY (a_conv)
            ORDER BY id FOR NO KEY UPDATE) AS c;
    first := last;
    FOR i IN 1 .. coalesce(array_length(a_conv, 1), 0) LOOP
        r_seq := NULL; r_ts := NULL; r_withheld := NULL; r_kind := NULL; r_role := NULL;
        j := array_position(ids, a_conv[i]);
        IF j IS NOT NULL THEN
            SELECT m.role INTO r_role FROM members AS m
             WHERE m.conv_id = a_conv[i] AND m.account_id = a_sender[i];
        END IF;
        IF r_role IS NULL THEN
            r_outcome := 'absent';
            RETURN NEXT;
            CONTINUE;
        END IF;
        r_kind := kinds[j];
        IF r_kind || ' ' || r_role = ANY (a_refused) THEN
            r_outcome := 'refused';
            RETURN NEXT;
            CONTINUE;
        END IF;
        to_ := a_to[i]::BIGINT[];
        SELECT m.seq, m.ts, m.kind, m.body, coalesce(m.to_accounts, '{}') AS to_accounts,
               m.withheld
          INTO prior FROM messages AS m
         WHERE m.conv_id = a_conv[i] AND m.device = a_device[i] AND m.cmid = a_cmid[i];
        IF FOUND THEN
            IF prior.kind = a_kind[i] AND prior.body = a_body[i] AND prior.to_accounts = to_ THEN
                r_outcome := 'duplicate';
                r_seq := prior.seq;
                r_ts := prior.ts;
                r_withheld := prior.withheld;
            ELSE
                r_outcome := 'conflict';
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;
        last[j] := last[j] + 1;
        r_seq := last[j];
        r_ts := a_ts[i];
        IF NOT (a_kind[i] = ANY (a_always)) THEN
            SELECT array_agg(b.account_id ORDER BY b.account_id) INTO r_withheld FROM members AS b
             WHERE b.conv_id = a_conv[i] AND b.access = 'addressed'
               AND b.account_id <> a_sender[i] AND NOT (b.account_id = ANY (to_));
        END IF;
        INSERT INTO messages (conv_id, seq, ts, sender, device, cmid, kind, body, to_accounts,
                              withheld)
        VALUES (a_conv[i], r_seq, r_ts, a_sender[i], a_device[i], a_cmid[i], a_kind[i],
                a_body[i], nullif(to_, '{}'), r_withheld);
        r_outcome := 'new';
        RETURN NEXT;
    END LOOP;
    UPDATE conversations AS c SET last_seq = u.last
      FROM unnest(ids, last, first) AS u (id, last, first)
     WHERE c.id = u.id AND u.last <> u.first;
END
$$;
