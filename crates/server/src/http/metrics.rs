//! `GET /metrics`: the server's counters in Prometheus's text format (0.0.4), from the
//! same counters as `serverStatus`.

use std::sync::atomic::Ordering;

use eddy_metrics::Exposition;

use crate::state::ServerState;

/// Every counter, in Prometheus's text format.
pub fn metrics(state: &ServerState) -> String {
    let mut e = Exposition::new();
    let engine = &state.engine;
    e.single(
        "eddy_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        state.started.elapsed().as_secs_f64(),
    );
    e.single(
        "eddy_resident_memory_bytes",
        "gauge",
        "Resident set size of the server process.",
        (crate::ops::process_memory_kib().0 * 1024) as f64,
    );
    e.single(
        "eddy_connections",
        "gauge",
        "Open client connections.",
        state.connections_current.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "eddy_connections_created_total",
        "counter",
        "Client connections accepted since start.",
        state.connections_total.load(Ordering::Relaxed) as f64,
    );
    state.ops.write_metrics(&mut e);
    let (opened, open, _, _) = state.cursors.metrics();
    e.single(
        "eddy_cursors_open",
        "gauge",
        "Open cursors, change streams included.",
        open as f64,
    );
    e.single(
        "eddy_cursors_opened_total",
        "counter",
        "Cursors opened since start.",
        opened as f64,
    );
    e.single(
        "eddy_change_streams_open",
        "gauge",
        "Open change streams (and other awaitData cursors).",
        state.cursors.awaiting_data() as f64,
    );
    e.single(
        "eddy_change_streams_waiting",
        "gauge",
        "Change streams waiting in a getMore for an event.",
        engine.hub().waiters() as f64,
    );
    e.single(
        "eddy_change_stream_answers_on_wake_total",
        "counter",
        "getMore replies written by the thread that woke their stream.",
        crate::answer::ANSWERED_ON_WAKE.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "eddy_change_events_built_total",
        "counter",
        "Change events built (once per oplog entry and event shape).",
        eddy_engine::changes::EVENTS_BUILT.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "eddy_change_events_delivered_total",
        "counter",
        "Change events returned to streams (once per stream).",
        eddy_engine::changes::EVENTS_DELIVERED.load(Ordering::Relaxed) as f64,
    );
    let commits = engine.commit_stats();
    e.single(
        "eddy_commits_total",
        "counter",
        "Durable group commits (one fsync of the journal each).",
        commits.commits.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "eddy_checkpoints_total",
        "counter",
        "Checkpoints: durable commits of the database file, after which start-up has no journal record to apply.",
        engine.checkpoints() as f64,
    );
    e.single(
        "eddy_commit_jobs_total",
        "counter",
        "Write jobs committed.",
        commits.jobs.load(Ordering::Relaxed) as f64,
    );
    e.family(
        "eddy_commit_group_size",
        "histogram",
        "Write jobs per group commit.",
    )
    .histogram("eddy_commit_group_size", &[], &commits.group_size);
    e.family(
        "eddy_commit_duration_seconds",
        "histogram",
        "Time to commit a group (its fsync included).",
    )
    .histogram("eddy_commit_duration_seconds", &[], &commits.commit_latency);
    e.single(
        "eddy_oplog_bytes",
        "gauge",
        "Approximate bytes held by the oplog.",
        engine.oplog_bytes() as f64,
    );
    let newest = engine.last_op_time().time;
    let window = match engine.oplog_start() {
        Ok(Some(oldest)) if newest >= oldest.time => f64::from(newest - oldest.time),
        _ => 0.0,
    };
    e.single(
        "eddy_oplog_window_seconds",
        "gauge",
        "Seconds between the oldest and the newest oplog entry (how far back a stream can resume).",
        window,
    );
    e.finish()
}
