-- eventstore_append_v2: the append of 0001_events, cheaper for the database, same guarantees.
-- See docs/eventstore.md ("Append algorithm") for the measurements behind it.
--
-- What changes against eventstore_append():
--
-- * The client may link the chain itself. A client that knows the hash of the event at
--   p_expected_version (the genesis hash for a new stream; for an existing one, because it
--   appended or read that event: a committed event's hash never changes) sends it as
--   p_prev_hash together with the batch's hashes in p_hashes. They are used only if
--   p_prev_hash is the stream's stored head, checked here under the stream queue, so a writer
--   with an outdated or wrong idea of the head can never fork the chain; otherwise, or without
--   p_hashes, the function links the batch itself exactly as before. Either way the hashes
--   are computed from client-made text, as they always were (the envelope halves came from
--   the client), so nothing is trusted that was not trusted before; verify() recomputes them.
-- * No hash envelope is sent twice: the function builds it from the payload and metadata texts
--   it stores anyway, plus each event's tail (p_hash_tails, everything after prev_hash), where
--   eventstore_append() received a second copy of payload and metadata in p_hash_heads.
-- * No row lock, and with a hint no separate read of the head either: the head moves by an
--   UPDATE guarded by the head the batch links to (the hint, else the head read without a
--   lock), in the same statement as the insert of the events, which inserts nothing if the
--   guard failed. Every appender queues on the advisory lock first, so the row lock only
--   repeated that wait; each statement of a PL/pgSQL function costs executor start and end,
--   and the lock record, the separate SELECT and the separate UPDATE were most of what this
--   function spent beyond the bare insert. The guard also stops a writer that bypasses the
--   queue from being overwritten. The UPDATE is the transaction's first write (for a new
--   stream, the INSERT of its row at version 0, moved to its version by the same UPDATE, so no
--   other transaction ever sees version 0) and does not wait, which keeps tx_id order equal to
--   version order per stream (docs/adr/0001-global-order.md).
-- * Each row's hash is returned, so the client learns the new head without another read.
--
-- eventstore_append() stays: a process still running the previous code queues on the same
-- advisory lock and writes the same chain, so the two can run side by side during a deploy.
CREATE FUNCTION eventstore_append_v2(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_types            text[],
    p_schema_versions  integer[],
    p_payloads         text[],
    p_metadata         text[],
    p_occurred_at      timestamptz[],
    p_hash_tails       text[],
    p_prev_hash        text,
    p_hashes           text[]
) RETURNS TABLE (tx_id xid8, global_position bigint, version bigint, hash text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_count   integer := cardinality(p_event_ids);
    v_version bigint;
    v_first   text;              -- the head the batch links to
    v_read    boolean := false;  -- v_first is the stored head, not the client's hint
    v_head    text;
    v_hash    text[];
BEGIN
    -- The stream queue, exactly as in eventstore_append() (same key, so old and new code
    -- serialise with each other).
    PERFORM pg_advisory_xact_lock(24250, hashtext(p_stream_id));

    IF p_expected_version = 0 THEN
        -- Creating the row is what claims the stream; if an earlier creator got there first
        -- (it held the queue before us and has committed), nothing is inserted.
        INSERT INTO streams (stream_id, version, head_hash)
        VALUES (p_stream_id, 0, repeat('0', 64))
        ON CONFLICT (stream_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        v_first := repeat('0', 64);
        v_read := true;
    ELSIF p_hashes IS NOT NULL THEN
        v_first := p_prev_hash;  -- checked by the guarded UPDATE below
    END IF;

    LOOP
        IF v_first IS NULL THEN
            SELECT s.version, s.head_hash INTO v_version, v_first
            FROM streams s WHERE s.stream_id = p_stream_id;
            IF NOT FOUND OR v_version <> p_expected_version THEN
                RETURN;
            END IF;
            v_read := true;
        END IF;

        IF p_hashes IS NOT NULL AND p_prev_hash = v_first THEN
            IF cardinality(p_hashes) <> v_count THEN
                RAISE EXCEPTION 'eventstore_append_v2: % hashes for % events',
                    cardinality(p_hashes), v_count;
            END IF;
            v_hash := p_hashes;
        ELSE
            -- The envelope of ADR 0002 in canonical key order; uuid::text is the canonical
            -- lower-case 8-4-4-4-12 form, payload and metadata are the canonical texts.
            v_head := v_first;
            FOR i IN 1 .. v_count LOOP
                v_head := encode(sha256(convert_to(
                    '{"event_id":"' || p_event_ids[i]::text || '","metadata":' || p_metadata[i]
                    || ',"payload":' || p_payloads[i] || ',"prev_hash":"' || v_head || '"'
                    || p_hash_tails[i], 'UTF8')), 'hex');
                v_hash[i] := v_head;
            END LOOP;
        END IF;

        -- One statement: move the head if it is where the batch links to, and insert the
        -- events only then (the EXISTS is evaluated once, before any row is inserted).
        -- WITH ORDINALITY + ORDER BY: identity values follow version order within the batch.
        -- Each prev_hash is taken from the same array as the hashes, so the batch is linked
        -- whoever computed them.
        RETURN QUERY
        WITH head AS (
            UPDATE streams
            SET version = p_expected_version + v_count, head_hash = v_hash[v_count],
                updated_at = clock_timestamp()
            WHERE stream_id = p_stream_id AND version = p_expected_version
              AND head_hash = v_first
            RETURNING 1
        )
        INSERT INTO events (stream_id, version, event_id, type, schema_version, payload,
                            metadata, occurred_at, prev_hash, hash)
        SELECT p_stream_id, p_expected_version + e.ord, e.event_id, e.type, e.schema_version,
               e.payload::jsonb, e.metadata::jsonb, e.occurred_at,
               CASE WHEN e.ord = 1 THEN v_first ELSE v_hash[e.ord - 1] END, e.hash
        FROM unnest(p_event_ids, p_types, p_schema_versions, p_payloads, p_metadata,
                    p_occurred_at, v_hash) WITH ORDINALITY
             AS e(event_id, type, schema_version, payload, metadata, occurred_at, hash, ord)
        WHERE EXISTS (SELECT FROM head)
        ORDER BY e.ord
        RETURNING events.tx_id, events.global_position, events.version, events.hash;

        -- Nothing written: a hint that was not the head (read the head and link here), or a
        -- head that moved under a writer bypassing the queue (refused: the client resolves).
        IF FOUND OR v_read THEN
            RETURN;
        END IF;
        v_first := NULL;
    END LOOP;
END;
$$;
