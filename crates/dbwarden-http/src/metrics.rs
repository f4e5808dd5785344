//! `GET /metrics`: the monitor in Prometheus form.
//!
//! A prometheus-client registry is built per scrape with one custom
//! [`Collector`] that reads the monitor through its public API, so nothing
//! is registered ahead of time and nothing can drift from the monitor.
//! Names follow the OpenTelemetry database-client conventions under a
//! `dbwarden_` prefix (connections by state keep the conventions' earlier
//! name, `db_client_connections_usage`: Prometheus reserves a `_count`
//! suffix for histograms); durations are histograms in seconds with the
//! OpenTelemetry bucket bounds. Labels are bounded: fingerprints are the
//! monitor's top-K table plus `other` (`MonitorConfig::top_queries`), routes
//! its top routes plus `other`; the statement text itself is never a label.
//!
//! prometheus-client writes OpenMetrics text; for the classic Prometheus
//! text format (the default) the few differences are rewritten: counter
//! metadata carries the `_total` suffix, and `# UNIT` and `# EOF` go.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use dbwarden_core::{
    AlertState, ErrorClass, HealthReport, HealthStatus, HistogramSnapshot, Monitor, QueryStat, Severity,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::error::ApiError;
use crate::state::AppState;

/// The bucket bounds of every duration histogram, in seconds (the
/// OpenTelemetry database-client recommendation).
pub const DURATION_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The exposition format of [`render_metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl MetricsFormat {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            MetricsFormat::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics when `accept` asks for `application/openmetrics-text`,
    /// Prometheus text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let wants = accept.is_some_and(|a| {
            a.split(',').any(|part| {
                let mut fields = part.split(';');
                let mime = fields.next().unwrap_or("").trim();
                let refused = fields.any(|f| f.trim().replace(' ', "") == "q=0");
                mime.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants { MetricsFormat::OpenMetrics } else { MetricsFormat::Prometheus }
    }
}

/// Reads the monitor at each scrape.
#[derive(Debug)]
struct MonitorCollector {
    monitor: Monitor,
    health: Arc<HealthReport>,
}

type Labels = Vec<(&'static str, String)>;

fn counter(e: &mut MetricEncoder<'_>, value: u64) -> fmt::Result {
    e.encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// Per-bucket counts at [`DURATION_BUCKETS`] plus `+Inf`, for the encoder.
fn buckets(h: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
    let mut below = 0u64;
    for bound in DURATION_BUCKETS {
        let cumulative = h.count_at_or_below(std::time::Duration::from_secs_f64(bound));
        out.push((bound, cumulative.saturating_sub(below)));
        below = cumulative.max(below);
    }
    out.push((f64::INFINITY, h.count().saturating_sub(below)));
    out
}

fn histogram(e: &mut MetricEncoder<'_>, h: &HistogramSnapshot) -> fmt::Result {
    e.encode_histogram::<NoLabelSet>(h.sum().as_secs_f64(), h.count(), &buckets(h), None)
}

struct Families<'a, 'b> {
    encoder: &'a mut DescriptorEncoder<'b>,
}

impl Families<'_, '_> {
    fn one(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        kind: MetricType,
        encode: impl FnOnce(&mut MetricEncoder<'_>) -> fmt::Result,
    ) -> fmt::Result {
        let mut e = self.encoder.encode_descriptor(name, help, unit, kind)?;
        encode(&mut e)
    }

    fn labelled<L: EncodeLabelSet, T>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        kind: MetricType,
        rows: impl IntoIterator<Item = (L, T)>,
        mut encode: impl FnMut(&mut MetricEncoder<'_>, &T) -> fmt::Result,
    ) -> fmt::Result {
        let mut e = self.encoder.encode_descriptor(name, help, unit, kind)?;
        for (labels, value) in rows {
            let mut family = e.encode_family(&labels)?;
            encode(&mut family, &value)?;
        }
        Ok(())
    }
}

fn query_labels(pool: &str, q: &QueryStat) -> Labels {
    let (id, operation, table, summary) = if q.other {
        ("other".to_owned(), "other".to_owned(), String::new(), "other".to_owned())
    } else {
        let operation = q.kind.as_str().to_uppercase();
        let table = q.table.clone().unwrap_or_default();
        let summary = if table.is_empty() { operation.clone() } else { format!("{operation} {table}") };
        (q.fingerprint.to_string(), operation, table, summary)
    };
    vec![
        ("db_client_connection_pool_name", pool.to_owned()),
        ("db_query_fingerprint", id),
        ("db_operation_name", operation),
        ("db_collection_name", table),
        ("db_query_summary", summary),
    ]
}

impl Collector for MonitorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge, Histogram};
        let m = &self.monitor;
        let s = m.snapshot();
        let h = m.latency_histograms();
        let pool = m.name().to_owned();
        let pool_label = || vec![("db_client_connection_pool_name", pool.clone())];
        let secs = Unit::Seconds;
        let ratio = Unit::Other("ratio".into());
        let mut f = Families { encoder: &mut encoder };

        // ---- build and health ------------------------------------------------
        f.labelled(
            "build_info",
            "dbwarden's version; always 1",
            None,
            Gauge,
            [(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1u64)],
            |e, v| e.encode_gauge(v),
        )?;
        f.one("monitor_start_time", "When the monitor started, Unix time", Some(&secs), Gauge, |e| {
            e.encode_gauge(&(s.monitor.started_at.as_millis() as f64 / 1000.0))
        })?;
        let status = self.health.status;
        f.labelled(
            "health_status",
            "1 for the current health status (pass, warn, fail), 0 for the others",
            None,
            Gauge,
            [HealthStatus::Pass, HealthStatus::Warn, HealthStatus::Fail]
                .map(|st| (vec![("status", st.as_str().to_owned())], u64::from(st == status))),
            |e, v| e.encode_gauge(v),
        )?;

        // ---- the pool (OpenTelemetry db.client.connection.*) ----------------------
        let pm = &s.pool_metrics;
        if let Some(current) = pm.current {
            let c = current.sample;
            f.labelled(
                "db_client_connections_usage",
                "Connections open, by state (OpenTelemetry db.client.connection.count)",
                None,
                Gauge,
                [("idle", c.idle), ("used", c.in_use)].map(|(state, v)| {
                    let mut labels = pool_label();
                    labels.push(("state", state.to_owned()));
                    (labels, u64::from(v))
                }),
                |e, v| e.encode_gauge(v),
            )?;
            for (name, help, v) in [
                ("db_client_connection_max", "The pool's maximum size", c.max),
                ("db_client_connection_idle_min", "The pool's minimum size", c.min),
                ("db_client_connection_pending_requests", "Tasks waiting for a connection", c.pending),
            ] {
                f.labelled(name, help, None, Gauge, [(pool_label(), u64::from(v))], |e, v| e.encode_gauge(v))?;
            }
            f.labelled(
                "db_client_connection_utilization",
                "Connections in use over the maximum, 0 to 1",
                Some(&ratio),
                Gauge,
                [(pool_label(), current.utilization)],
                |e, v| e.encode_gauge(v),
            )?;
        }
        f.labelled(
            "db_client_connection_timeouts",
            "Checkouts that gave up waiting for a connection",
            None,
            Counter,
            [(pool_label(), pm.timeouts)],
            |e, v| counter(e, *v),
        )?;
        for (name, help, snap) in [
            ("db_client_connection_create_time", "Time to open a new connection", &h.connection_create),
            ("db_client_connection_wait_time", "Time waiting for a connection from the pool", &h.checkout_wait),
            ("db_client_connection_use_time", "Time a connection stayed checked out", &h.connection_use),
        ] {
            f.labelled(name, help, Some(&secs), Histogram, [(pool_label(), snap)], |e, h| histogram(e, h))?;
        }
        for (name, help, v) in [
            ("db_client_connections_opened", "Connections opened by the pool", pm.connections_opened),
            ("db_client_connections_closed", "Connections closed by the pool", pm.connections_closed),
            ("db_client_connection_checkouts", "Connections checked out of the pool", pm.checkouts),
        ] {
            f.labelled(name, help, None, Counter, [(pool_label(), v)], |e, v| counter(e, *v))?;
        }
        f.labelled(
            "db_client_connection_checked_out",
            "Checkouts out now (tracked individually)",
            None,
            Gauge,
            [(pool_label(), pm.checked_out as u64)],
            |e, v| e.encode_gauge(v),
        )?;
        f.labelled(
            "db_client_connection_suspected_leaks",
            "Checkouts held past the leak threshold and not returned",
            None,
            Gauge,
            [(pool_label(), pm.suspected_leaks)],
            |e, v| e.encode_gauge(v),
        )?;

        // ---- operations (db.client.operation.duration) by fingerprint -------------
        let mut queries = m.query_histograms();
        queries.sort_by(|a, b| a.0.other.cmp(&b.0.other).then(a.0.fingerprint.cmp(&b.0.fingerprint)));
        let labelled: Vec<(Labels, &QueryStat, &HistogramSnapshot)> =
            queries.iter().map(|(q, h)| (query_labels(&pool, q), q, h)).collect();
        f.labelled(
            "db_client_operation_duration",
            "Statement execution time, by normalized fingerprint (top-K plus other)",
            Some(&secs),
            Histogram,
            labelled.iter().map(|(l, _, h)| (l.as_slice(), *h)),
            |e, h| histogram(e, h),
        )?;
        f.labelled(
            "db_client_operation_errors",
            "Failed statements, by normalized fingerprint (top-K plus other)",
            None,
            Counter,
            labelled.iter().map(|(l, q, _)| (l.as_slice(), q.errors)),
            |e, v| counter(e, *v),
        )?;
        f.labelled(
            "db_client_operation_returned_rows",
            "Rows returned or affected, by normalized fingerprint (top-K plus other)",
            None,
            Counter,
            labelled.iter().map(|(l, q, _)| (l.as_slice(), q.rows)),
            |e, v| counter(e, *v),
        )?;
        f.labelled(
            "db_client_operation_slow",
            "Statements at or above the slow-query threshold",
            None,
            Counter,
            [(pool_label(), s.query_metrics.slow)],
            |e, v| counter(e, *v),
        )?;

        // ---- errors ------------------------------------------------------------
        f.labelled(
            "errors",
            "Failed database operations, by error class",
            None,
            Counter,
            ErrorClass::ALL.map(|class| {
                let n = s.error_metrics.by_class.get(&class).copied().unwrap_or(0);
                (vec![("db_client_connection_pool_name", pool.clone()), ("error_type", class.as_str().to_owned())], n)
            }),
            |e, v| counter(e, *v),
        )?;

        // ---- database sessions and recovery -------------------------------------
        let sm = &s.session_metrics;
        for (name, help, v) in [
            ("sessions_created", "Database sessions opened (checkouts and transactions)", sm.sessions_created),
            ("sessions_closed", "Database sessions closed", sm.sessions_closed),
            ("transaction_commits", "Transactions committed", sm.commits),
            ("transaction_rollbacks", "Transactions rolled back", sm.rollbacks),
            ("session_errors", "Session-level errors not tied to a statement", sm.session_errors),
        ] {
            f.labelled(name, help, None, Counter, [(pool_label(), v)], |e, v| counter(e, *v))?;
        }
        f.labelled(
            "sessions_active",
            "Database sessions open now",
            None,
            Gauge,
            [(pool_label(), sm.active_sessions)],
            |e, v| e.encode_gauge(v),
        )?;
        for (name, help, snap) in [
            ("session_duration", "How long database sessions stayed open", &h.session_duration),
            ("session_creation_duration", "Time to open a database session", &h.session_creation),
            ("session_cleanup_duration", "Time to close a database session", &h.session_cleanup),
            ("recovery_duration", "Time of recovery attempts on a fresh connection", &h.recovery),
        ] {
            f.labelled(name, help, Some(&secs), Histogram, [(pool_label(), snap)], |e, h| histogram(e, h))?;
        }
        let rm = &s.recovery_metrics;
        f.labelled(
            "recoveries",
            "Recovery attempts on a fresh connection, by outcome",
            None,
            Counter,
            [("success", rm.successful_recoveries), ("failure", rm.failed_recoveries)].map(|(outcome, v)| {
                let mut labels = pool_label();
                labels.push(("outcome", outcome.to_owned()));
                (labels, v)
            }),
            |e, v| counter(e, *v),
        )?;

        // ---- HTTP requests (http.server.*) ---------------------------------------
        let routes = m.route_histograms();
        let route_labels = |method: &Option<String>, route: &Option<String>| -> Labels {
            vec![
                ("http_request_method", method.clone().unwrap_or_else(|| "other".into())),
                ("http_route", route.clone().unwrap_or_else(|| "other".into())),
            ]
        };
        f.labelled(
            "http_server_request_duration",
            "Request duration, by method and route template (top routes plus other)",
            Some(&secs),
            Histogram,
            routes.iter().map(|(r, h)| (route_labels(&r.method, &r.route), h)),
            |e, h| histogram(e, h),
        )?;
        f.labelled(
            "http_server_request_errors",
            "Requests answered with a 5xx status, by method and route template",
            None,
            Counter,
            routes.iter().map(|(r, _)| (route_labels(&r.method, &r.route), r.errors)),
            |e, v| counter(e, *v),
        )?;
        let rq = &s.request_metrics;
        f.one("http_server_active_requests", "Requests in flight now", None, Gauge, |e| e.encode_gauge(&rq.in_flight))?;
        f.one("http_server_slow_requests", "Requests slower than the slow-request threshold", None, Counter, |e| {
            counter(e, rq.slow)
        })?;
        f.one("http_server_n_plus_one", "Requests found running one statement many times (N+1)", None, Counter, |e| {
            counter(e, rq.n_plus_one)
        })?;

        // ---- alerts ------------------------------------------------------------------
        let alerts = m.alerts();
        let count = |state: AlertState, severity: Severity| {
            alerts.iter().filter(|a| a.state == state && a.severity == severity).count() as u64
        };
        f.labelled(
            "alerts",
            "Active alerts, by state and severity",
            None,
            Gauge,
            [AlertState::Pending, AlertState::Firing].into_iter().flat_map(|state| {
                Severity::ALL.map(move |sev| {
                    (vec![("state", state.as_str().to_owned()), ("severity", sev.as_str().to_owned())], (state, sev))
                })
            }),
            |e, (state, sev)| e.encode_gauge(&count(*state, *sev)),
        )?;

        // ---- cleanup and the session store ----------------------------------------
        let cm = &s.cleanup_metrics;
        for (name, help, v) in [
            ("cleanup_runs", "Session cleanup runs", cm.runs),
            ("cleanup_rows_removed", "Rows removed by cleanup runs", cm.rows_removed),
            ("cleanup_errors", "Failed cleanup batches", cm.errors),
        ] {
            f.one(name, help, None, Counter, |e| counter(e, v))?;
        }
        f.one("cleanup_duration", "Cleanup run durations", Some(&secs), Histogram, |e| histogram(e, &h.cleanup_run))?;
        if let Some(at) = cm.last_run_at {
            f.one("cleanup_last_run", "When the last cleanup run finished, Unix time", Some(&secs), Gauge, |e| {
                e.encode_gauge(&(at.as_millis() as f64 / 1000.0))
            })?;
        }
        let st = &s.session_store_metrics;
        f.labelled(
            "session_store_writes",
            "Session-store saves, by what was written (full, touch, avoided)",
            None,
            Counter,
            [("full", st.writes), ("touch", st.touches), ("avoided", st.writes_avoided)]
                .map(|(kind, v)| (vec![("kind", kind.to_owned())], v)),
            |e, v| counter(e, *v),
        )?;
        if let Some(table) = st.table {
            f.labelled(
                "session_table_rows",
                "Rows in the session table, by state (total, expired)",
                None,
                Gauge,
                [("total", table.total), ("expired", table.expired)].map(|(k, v)| (vec![("state", k.to_owned())], v)),
                |e, v| e.encode_gauge(v),
            )?;
            if let Some(bytes) = table.bytes {
                f.one("session_table", "Size of the session table with its indexes", Some(&Unit::Bytes), Gauge, |e| {
                    e.encode_gauge(&bytes)
                })?;
            }
        }

        // ---- host resources ------------------------------------------------------
        if let Some(r) = s.resource_metrics.current {
            f.one("host_cpu_usage", "Host CPU in use, 0 to 1", Some(&ratio), Gauge, |e| e.encode_gauge(&r.cpu_usage))?;
            f.one("host_memory_used", "Host memory in use", Some(&Unit::Bytes), Gauge, |e| {
                e.encode_gauge(&r.memory_used)
            })?;
            f.one("host_memory_total", "Host memory installed", Some(&Unit::Bytes), Gauge, |e| {
                e.encode_gauge(&r.memory_total)
            })?;
            f.one(
                "process_resident_memory",
                "Resident memory of the dbwarden process",
                Some(&Unit::Bytes),
                Gauge,
                |e| e.encode_gauge(&r.process_rss),
            )?;
        }
        Ok(())
    }
}

/// Rewrites OpenMetrics text as Prometheus text 0.0.4.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: HashSet<&str> =
        open_metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("HELP", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("TYPE", r)));
        if let Some((kind, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                let _ = writeln!(out, "# {kind} {name}_total {tail}");
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Renders `monitor`'s metrics in `format`. `health` is the verdict to
/// report (computed when `None`).
pub fn render_metrics(monitor: &Monitor, health: Option<Arc<HealthReport>>, format: MetricsFormat) -> String {
    let health = health.unwrap_or_else(|| Arc::new(monitor.health()));
    let mut registry = Registry::with_prefix("dbwarden");
    registry.register_collector(Box::new(MonitorCollector { monitor: monitor.clone(), health }));
    let mut text = String::with_capacity(64 * 1024);
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        // Writing to a String cannot fail; an encoder error would be a bug.
        tracing::error!(target: "dbwarden::http", "metrics encoding failed");
    }
    match format {
        MetricsFormat::OpenMetrics => text,
        MetricsFormat::Prometheus => to_prometheus_text(&text),
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(axum::extract::State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = MetricsFormat::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let monitor = state.inner.monitor.clone();
    let health = state.inner.cache.health(&monitor);
    let rendered = tokio::task::spawn_blocking(move || render_metrics(&monitor, Some(health), format)).await;
    match rendered {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            response
        }
        Err(e) => ApiError::Internal(format!("rendering metrics failed: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        assert_eq!(MetricsFormat::negotiate(None), MetricsFormat::Prometheus);
        assert_eq!(MetricsFormat::negotiate(Some("text/plain")), MetricsFormat::Prometheus);
        assert_eq!(
            MetricsFormat::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
            MetricsFormat::OpenMetrics
        );
        assert_eq!(MetricsFormat::negotiate(Some("application/openmetrics-text; q=0")), MetricsFormat::Prometheus);
    }

    #[test]
    fn counters_get_their_total_name_in_prometheus_text() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total 3\n# HELP x_d D.\n# TYPE x_d_seconds histogram\n# UNIT x_d_seconds seconds\n# EOF\n";
        let text = to_prometheus_text(om);
        assert!(
            text.contains("# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total 3\n")
        );
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    }
}
