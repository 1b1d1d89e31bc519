-- chatd schema, version 19 (PostgreSQL): how many members have left or been removed from each
-- conversation. Every message is published with the count read when it was appended (under the
-- conversation's row lock, so a removal committed before the message is counted), and a node
-- that gets a message following a removal it has not applied yet re-reads the membership before
-- delivering it (chatd.hub; issue 14.7: Redis orders envelopes per publisher only).
--
-- chatd_append2 is chatd_append of version 13 (with a_fc) returning the count too, r_removals,
-- read with the lock and the seq counter. A new function, not a changed one: a node of the
-- previous version keeps calling chatd_append during a rolling upgrade.
ALTER TABLE conversations ADD COLUMN removals BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION chatd_append2(
    a_conv BIGINT[], a_sender BIGINT[], a_device BIGINT[], a_cmid TEXT[], a_kind TEXT[],
    a_body BYTEA[], a_ts BIGINT[], a_to TEXT[], a_refused TEXT[], a_always TEXT[], a_fc BYTEA[],
    OUT r_outcome TEXT, OUT r_seq BIGINT, OUT r_ts BIGINT, OUT r_withheld BIGINT[],
    OUT r_kind TEXT, OUT r_role TEXT, OUT r_removals BIGINT
) RETURNS SETOF record LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ids BIGINT[];
    kinds TEXT[];
    removed BIGINT[];
    last BIGINT[];
    first BIGINT[];
    j INT;
    to_ BIGINT[];
    prior RECORD;
BEGIN
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}'),
           coalesce(array_agg(c.kind ORDER BY c.id), '{}'),
           coalesce(array_agg(c.last_seq ORDER BY c.id), '{}'),
           coalesce(array_agg(c.removals ORDER BY c.id), '{}')
      INTO ids, kinds, last, removed
      FROM (SELECT id, kind, last_seq, removals FROM conversations WHERE id = ANY (a_conv)
            ORDER BY id FOR NO KEY UPDATE) AS c;
    first := last;
    FOR i IN 1 .. coalesce(array_length(a_conv, 1), 0) LOOP
        r_seq := NULL; r_ts := NULL; r_withheld := NULL; r_kind := NULL; r_role := NULL;
        r_removals := NULL;
        j := array_position(ids, a_conv[i]);
        IF j IS NOT NULL THEN
            r_removals := removed[j];
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
                              withheld, fc)
        VALUES (a_conv[i], r_seq, r_ts, a_sender[i], a_device[i], a_cmid[i], a_kind[i],
                a_body[i], nullif(to_, '{}'), r_withheld, a_fc[i]);
        r_outcome := 'new';
        RETURN NEXT;
    END LOOP;
    UPDATE conversations AS c SET last_seq = u.last
      FROM unnest(ids, last, first) AS u (id, last, first)
     WHERE c.id = u.id AND u.last <> u.first;
END
$$;
