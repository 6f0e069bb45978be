//! The process's metrics recorder: Prometheus' text format, served by the operator
//! listener at `/metrics` (metrics-exporter-prometheus, without its own HTTP listener).
//! The libraries emit through the `metrics` facade: ingest (batches, events and refusals
//! by municipality, outcome and rule), the sled log (group-commit size and latency,
//! fsync latency, queue depth), statistics (query latency per figure); this module adds
//! the read model's size and the projector's lag.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use kpr_eventlog::EventLog;
use kpr_projection::model::ReadModel;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process; later calls reuse it) and hands `/metrics`
/// its renderer.
pub fn install() {
    let handle = HANDLE.get_or_init(|| match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            metrics::gauge!("kpr_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no metrics recorder");
            None
        }
    });
    if let Some(handle) = handle.clone() {
        kpr_statistics::http::set_metrics(Arc::new(move || handle.render()));
    }
}

/// Every few seconds: the read model's size and, per partition, how many records of
/// the log it has not folded yet (records, the unit of the positions in answers).
pub async fn watch_model<L: EventLog>(log: Arc<L>, model: Arc<RwLock<ReadModel>>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(2));
    loop {
        ticks.tick().await;
        let (events, position) = match model.read() {
            Ok(m) => (m.event_count(), m.position()),
            Err(_) => return,
        };
        metrics::gauge!("kpr_model_events").set(events as f64);
        for partition in 0..log.partition_count() {
            let Ok(end) = log.end_offset(partition).await else {
                continue;
            };
            let folded = position
                .iter()
                .find(|(p, _)| *p == partition)
                .map_or(0, |(_, next)| *next);
            metrics::gauge!("kpr_projector_lag_records", "partition" => partition.to_string())
                .set(end.saturating_sub(folded) as f64);
        }
    }
}
