-- The event store: one row per domain event, append-only, hash-chained per stream.
-- See docs/eventstore.md (tables, append algorithm) and docs/adr/0001-global-order.md.

DO $$
BEGIN
    -- Hashes are computed over UTF-8 text; any other server encoding would store something
    -- other than what was hashed (or refuse it).
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE EXCEPTION 'the event store needs a UTF8 database, this one is %',
            current_setting('server_encoding');
    END IF;
END $$;

-- One row per stream: its current version and the hash its chain ends at. Appends lock this
-- row (SELECT ... FOR UPDATE, after queueing on an advisory lock; see eventstore_append), which
-- serialises writers of one stream and nothing else.
CREATE TABLE streams (
    -- COLLATE "C": byte order, so prefix listing (starts_with) can use the primary key
    -- and comparisons are memcmp instead of locale collation on every index probe.
    stream_id   text COLLATE "C" PRIMARY KEY,
    version     bigint      NOT NULL,
    head_hash   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT streams_stream_id_length CHECK (length(stream_id) BETWEEN 1 AND 200),
    CONSTRAINT streams_version_nonnegative CHECK (version >= 0),
    CONSTRAINT streams_head_hash_hex CHECK (head_hash ~ '^[0-9a-f]{64}$')
)
-- Every append rewrites its stream's row: leave room on each page so the new row version fits
-- beside the old one (a HOT update, no index work).
WITH (fillfactor = 70);

CREATE TABLE events (
    -- Drawn when the row is inserted, so it does NOT follow commit order on its own; the global
    -- order is (tx_id, global_position), read only below the oldest running transaction.
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text COLLATE "C" NOT NULL,
    version         bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    type            text COLLATE "C" NOT NULL,
    schema_version  integer     NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    -- Domain time (Temporal virtual time in simulations), copied out of metadata so as-of
    -- reads can use an index; verify() checks it still agrees with the hashed metadata.
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL,
    -- Optimistic concurrency and idempotency, enforced by the database itself even for a
    -- writer that bypasses the stream lock.
    CONSTRAINT events_pkey PRIMARY KEY (stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_version_positive CHECK (version >= 1),
    CONSTRAINT events_schema_version_positive CHECK (schema_version >= 1),
    CONSTRAINT events_type_length CHECK (length(type) BETWEEN 1 AND 200),
    CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT events_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT events_hash_hex CHECK (hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT events_prev_hash_hex CHECK (prev_hash ~ '^[0-9a-f]{64}$')
);
-- No foreign key to streams: the append holds that row locked already, and the per-row RI
-- check would cost a lookup and a second lock on every insert. verify() reports events whose
-- stream row is missing.

-- The global order, for catch-up readers: WHERE (tx_id, global_position) > checkpoint.
CREATE UNIQUE INDEX events_global_order ON events (tx_id, global_position);
-- As-of reads: a stream's events up to a domain time.
CREATE INDEX events_stream_occurred_at ON events (stream_id, occurred_at);

-- Append-only. Corrections are new events, never edits: auditors replay this table.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Record a correction as a new event instead of changing history.';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- The append, in one round trip. Called by eventstore/store.py, which has already validated the
-- batch and serialised it canonically; see docs/eventstore.md ("Append algorithm").
--
-- p_hash_heads[i] / p_hash_tails[i] are event i's canonical hash envelope split around the
-- prev_hash value (eventstore.hashing.EnvelopeParts): the client knows everything but the
-- previous hash, which is only known here, under the stream lock. Returns the new rows'
-- positions, or no row at all when the stream is not at p_expected_version (the client then
-- works out whether that was a retry, a conflict or a lost race).
CREATE FUNCTION eventstore_append(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_types            text[],
    p_schema_versions  integer[],
    p_payloads         text[],
    p_metadata         text[],
    p_occurred_at      timestamptz[],
    p_hash_heads       text[],
    p_hash_tails       text[]
) RETURNS TABLE (tx_id xid8, global_position bigint, version bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_count   integer := cardinality(p_event_ids);
    v_version bigint;
    v_head    text;
    v_prev    text[];
    v_hash    text[];
BEGIN
    -- Queue appenders of this stream first, on a lock that never assigns a transaction id
    -- while waiting. A blocked SELECT ... FOR UPDATE can take its xid before it finally holds
    -- the row (when it follows the row's update chain), so on its own it would let a later
    -- version carry a smaller tx_id. Once this lock is held, the previous appender of the
    -- stream has ended, the row lock below does not wait, and this transaction's xid (its
    -- tx_id) is assigned after every earlier version's: per stream, global order is version
    -- order (docs/adr/0001-global-order.md). Key: (class 0x5EBA, 32-bit hash of the stream);
    -- a hash collision only makes two streams share a queue.
    PERFORM pg_advisory_xact_lock(24250, hashtext(p_stream_id));

    IF p_expected_version = 0 THEN
        v_head := repeat('0', 64);
    ELSE
        SELECT s.version, s.head_hash INTO v_version, v_head
        FROM streams s WHERE s.stream_id = p_stream_id
        FOR UPDATE;
        IF NOT FOUND OR v_version <> p_expected_version THEN
            RETURN;
        END IF;
    END IF;

    FOR i IN 1 .. v_count LOOP
        v_prev[i] := v_head;
        v_head := encode(sha256(convert_to(
            p_hash_heads[i] || '"' || v_head || '"' || p_hash_tails[i], 'UTF8')), 'hex');
        v_hash[i] := v_head;
    END LOOP;

    IF p_expected_version = 0 THEN
        -- Creating the row is what claims the stream; if an earlier creator got there first
        -- (it held the queue before us and has committed), nothing is inserted.
        INSERT INTO streams (stream_id, version, head_hash)
        VALUES (p_stream_id, v_count, v_head)
        ON CONFLICT (stream_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    ELSE
        UPDATE streams
        SET version = p_expected_version + v_count, head_hash = v_head,
            updated_at = clock_timestamp()
        WHERE stream_id = p_stream_id;
    END IF;

    -- WITH ORDINALITY + ORDER BY: identity values follow version order within the batch.
    RETURN QUERY
    INSERT INTO events (stream_id, version, event_id, type, schema_version, payload, metadata,
                        occurred_at, prev_hash, hash)
    SELECT p_stream_id, p_expected_version + e.ord, e.event_id, e.type, e.schema_version,
           e.payload::jsonb, e.metadata::jsonb, e.occurred_at, e.prev_hash, e.hash
    FROM unnest(p_event_ids, p_types, p_schema_versions, p_payloads, p_metadata,
                p_occurred_at, v_prev, v_hash) WITH ORDINALITY
         AS e(event_id, type, schema_version, payload, metadata, occurred_at, prev_hash,
              hash, ord)
    ORDER BY e.ord
    RETURNING events.tx_id, events.global_position, events.version;
END;
$$;

-- A stream's head may move forward (every append updates it) but never disappear.
CREATE FUNCTION streams_refuse_removal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'streams rows are permanent: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER streams_no_delete
    BEFORE DELETE ON streams
    FOR EACH ROW EXECUTE FUNCTION streams_refuse_removal();

CREATE TRIGGER streams_no_truncate
    BEFORE TRUNCATE ON streams
    FOR EACH STATEMENT EXECUTE FUNCTION streams_refuse_removal();
