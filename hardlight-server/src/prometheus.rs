//! A Prometheus exporter for the server's `hardlight_*` metrics (feature `prometheus`).
//!
//! The server reports through the `metrics` facade; this installs
//! `metrics-exporter-prometheus` as the process's recorder. Any other `metrics` recorder
//! works as well.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::ServerError;

/// Serves the metrics at `http://<addr>/metrics`. Call once, inside a tokio runtime,
/// before the server runs.
///
/// ```no_run
/// # async fn demo() -> Result<(), hardlight_server::ServerError> {
/// hardlight_server::prometheus::serve("0.0.0.0:9100".parse().unwrap())?;
/// # Ok(()) }
/// ```
pub fn serve(addr: SocketAddr) -> Result<(), ServerError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| ServerError::Metrics(Box::new(e)))
}

/// Installs the recorder without a listener; render the text format with
/// [`PrometheusHandle::render`] wherever you serve it.
pub fn recorder() -> Result<PrometheusHandle, ServerError> {
    PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| ServerError::Metrics(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hardlight_core::TransportKind;

    use crate::stats::{Meter, ServerCounters};

    #[test]
    fn the_server_metrics_reach_prometheus() {
        // a recorder of this test's own, for this thread only: other tests in this
        // binary report metrics concurrently and must not be counted
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let counters = Arc::new(ServerCounters::default());
            counters.connection_opened(TransportKind::Quic);
            let meter = Meter::new(Arc::clone(&counters));
            meter.call_started();
            meter.call_finished(true);
            meter.events_dropped(3);
            counters.connection_refused("max_connections_per_ip");
        });
        let text = handle.render();
        for expected in [
            "hardlight_connections_open 1",
            "hardlight_connections_total{transport=\"quic\"} 1",
            "hardlight_calls_total 1",
            "hardlight_calls_failed_total 1",
            "hardlight_calls_in_flight 0",
            "hardlight_events_dropped_total 3",
            "hardlight_connections_refused_total{reason=\"max_connections_per_ip\"} 1",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
        }
    }
}
