-- chaosbed sink schema. Applied by the postgres role; every statement is idempotent.

-- One row per event id of a run. The Spark sink upserts on (run_id, event_id);
-- `deliveries` counts how many times the sink wrote this id (1 in a healthy run):
-- a value above 1 is a duplicate that the upsert absorbed, e.g. the same event at
-- two Kafka offsets, or a replay that a non-idempotent sink would have doubled.
CREATE TABLE IF NOT EXISTS events (
    run_id          text        NOT NULL,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    produced_at     timestamptz NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    query_id        text        NOT NULL,
    batch_id        bigint      NOT NULL,
    deliveries      integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_run_committed_idx ON events (run_id, committed_at);

-- The same rows, appended with a plain INSERT and no key: the sink of the
-- `unsafe-sink` profile. Replayed batches show up here as duplicate rows.
CREATE TABLE IF NOT EXISTS events_append (
    run_id          text        NOT NULL,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    produced_at     timestamptz NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    query_id        text        NOT NULL,
    batch_id        bigint      NOT NULL,
    deliveries      integer     NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_append_run_event_idx ON events_append (run_id, event_id);

-- One row per micro-batch the sink committed, written in the same transaction
-- as its rows: a re-executed batch (same query and batch id, e.g. after a driver
-- kill between the sink commit and Spark's commit log) is skipped and counted in
-- `replays`. rows_staged - rows_inserted counts rows the upsert absorbed.
CREATE TABLE IF NOT EXISTS sink_batches (
    query_id       text        NOT NULL,
    batch_id       bigint      NOT NULL,
    rows_staged    integer     NOT NULL,
    rows_inserted  integer     NOT NULL,
    offsets        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    committed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    replays        integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (query_id, batch_id)
);

-- Streaming query progress, one row per progress event (every batch, and every
-- idle interval): the heartbeat that health checks and the report read.
CREATE TABLE IF NOT EXISTS spark_progress (
    query_id        text        NOT NULL,
    run_name        text,
    batch_id        bigint      NOT NULL,
    reported_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    num_input_rows  bigint      NOT NULL,
    input_rows_per_second     double precision,
    processed_rows_per_second double precision,
    batch_duration_ms bigint,
    end_offsets     jsonb,
    latest_offsets  jsonb
);
CREATE INDEX IF NOT EXISTS spark_progress_reported_idx ON spark_progress (reported_at);

-- One row per execution of a micro-batch by the sink (execution 0 the first, 1.. the replays Spark ran
-- again), written in the same transaction as the batch's marker or its replay count: the Kafka offsets
-- Spark planned for the batch, read from the checkpoint's offsets log (start = the previous batch's end,
-- end exclusive), and a digest of the rows it handed over. The checker finds skipped ids, gaps and
-- overlaps between batches, and replays that wrote other rows (docs/checker.md).
CREATE TABLE IF NOT EXISTS sink_batch_reads (
    query_id       text        NOT NULL,
    batch_id       bigint      NOT NULL,
    execution      integer     NOT NULL,
    start_offsets  jsonb,
    end_offsets    jsonb,
    rows_read      integer     NOT NULL,
    rows_digest    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    committed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (query_id, batch_id, execution)
);

-- What a micro-batch's tasks staged for the driver to move (spark_job/sink.py): each task replaces its
-- Spark partition's rows in one transaction, the driver moves the batch into the sink and deletes them in
-- the marker's transaction. Unlogged (no WAL for rows that live a second): a crash empties it, and the
-- driver, finding fewer rows than the tasks reported, stages the batch again.
CREATE UNLOGGED TABLE IF NOT EXISTS sink_stage (
    query_id        text    NOT NULL,
    batch_id        bigint  NOT NULL,
    spark_partition integer NOT NULL,
    run_id          text,
    event_id        bigint,
    topic           text,
    kafka_partition integer,
    kafka_offset    bigint,
    produced_at_ms  bigint
);
CREATE INDEX IF NOT EXISTS sink_stage_batch_idx ON sink_stage (query_id, batch_id, spark_partition);
-- Per execution of a batch: its tasks, and how many of them Spark ran more than once (a task retried
-- after an executor loss) - a whole batch run again is a new execution instead.
ALTER TABLE sink_batch_reads ADD COLUMN IF NOT EXISTS tasks integer;
ALTER TABLE sink_batch_reads ADD COLUMN IF NOT EXISTS retried_tasks integer;

-- The Kafka log as an audit read it after a run (tools validate): which event id of the run sits at
-- each (partition, offset), and each partition's log start and end offsets when it was read.
-- Unlogged: no WAL for millions of rows per audit (benchmarks/README.md: the audit rate); a crash
-- empties it, and `tools validate` reads the log again.
CREATE UNLOGGED TABLE IF NOT EXISTS kafka_log (
    run_id          text    NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL,
    event_id        bigint  NOT NULL
);
ALTER TABLE kafka_log SET UNLOGGED;
CREATE INDEX IF NOT EXISTS kafka_log_run_idx ON kafka_log (run_id, kafka_partition, kafka_offset);
CREATE TABLE IF NOT EXISTS kafka_log_audits (
    run_id          text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    log_start       bigint      NOT NULL,
    log_end         bigint      NOT NULL,
    records         bigint      NOT NULL,
    audited_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, kafka_partition)
);

-- Runs whose rows retention removed (tools/retention.py): `tools validate` refuses them rather than
-- finding every id missing; their directories keep the report's data.
CREATE TABLE IF NOT EXISTS pruned_runs (
    run_id          text        PRIMARY KEY,
    pruned_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    rows_removed    bigint      NOT NULL
);

-- Chaos triggers (tools/chaos/triggers.py): `after: sink-commit` LISTENs on chaosbed_sink_commit.
-- Statement-level on both sinks' tables, with the transaction id as payload: PostgreSQL delivers a
-- notification at commit and folds identical ones of one transaction, so a batch costs one.
CREATE OR REPLACE FUNCTION chaosbed_notify_sink_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chaosbed_sink_commit', txid_current()::text);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS chaosbed_sink_commit ON sink_batches;
CREATE TRIGGER chaosbed_sink_commit AFTER INSERT OR UPDATE ON sink_batches
    FOR EACH STATEMENT EXECUTE FUNCTION chaosbed_notify_sink_commit();
DROP TRIGGER IF EXISTS chaosbed_sink_commit ON events_append;
CREATE TRIGGER chaosbed_sink_commit AFTER INSERT ON events_append
    FOR EACH STATEMENT EXECUTE FUNCTION chaosbed_notify_sink_commit();
