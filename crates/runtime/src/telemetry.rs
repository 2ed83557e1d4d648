//! Logs, traces and metrics. `tracing` writes readable lines locally and JSON in
//! production; when an OTLP endpoint is configured, spans and metrics are exported too. The
//! W3C `traceparent` travels in NATS headers, so one order is one trace across services.
//!
//! Metrics use the `metrics` facade: every instrument is rendered for Prometheus at
//! `/metrics` and, when OTLP is on, mirrored to OpenTelemetry instruments.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::HeaderMap;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter {0:?} is invalid: {1}")]
    Filter(String, String),
    #[error("OTLP exporter: {0}")]
    Otlp(String),
}

/// Latency buckets in seconds, from 1 ms to 2 min.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

struct Installed {
    prometheus: PrometheusHandle,
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// What [`init`] installed; `shutdown` flushes the exporters.
#[derive(Clone)]
pub struct Telemetry {
    prometheus: PrometheusHandle,
}

impl Telemetry {
    /// The Prometheus text exposition of every metric.
    pub fn render_metrics(&self) -> String {
        self.prometheus.render()
    }

    /// Flushes and stops the OTLP exporters (call once, at the very end).
    pub fn shutdown(&self) {
        if let Some(installed) = INSTALLED.get() {
            if let Some(tracer) = &installed.tracer {
                let _ = tracer.force_flush();
                let _ = tracer.shutdown();
            }
            if let Some(meter) = &installed.meter {
                let _ = meter.force_flush();
                let _ = meter.shutdown();
            }
        }
    }
}

/// Installs logging, tracing and metrics for the process. The first call wins: later calls
/// (several services in one process, several tests in one binary) share what it installed.
pub fn init(config: &TelemetryConfig, service: &str) -> Result<Telemetry, TelemetryError> {
    if let Some(installed) = INSTALLED.get() {
        return Ok(Telemetry {
            prometheus: installed.prometheus.clone(),
        });
    }
    global::set_text_map_propagator(TraceContextPropagator::new());

    // `RUST_LOG`, where set, is put in `log_filter` by the binary.
    let filter = config.log_filter.clone();
    let env_filter = EnvFilter::try_new(&filter)
        .map_err(|e| TelemetryError::Filter(filter.clone(), e.to_string()))?;

    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let (tracer, meter) = match &config.otlp_endpoint {
        Some(endpoint) => {
            let spans = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
            let tracer = SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .with_resource(resource.clone())
                .build();
            let metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
            let meter = SdkMeterProvider::builder()
                .with_reader(
                    PeriodicReader::builder(metrics)
                        .with_interval(config.otlp_metrics_interval)
                        .build(),
                )
                .with_resource(resource)
                .build();
            global::set_meter_provider(meter.clone());
            (Some(tracer), Some(meter))
        }
        None => (None, None),
    };

    let otel_layer = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ferry"))
            .boxed()
    });
    let fmt_layer = match (config.log_format, config.log_to_stderr) {
        (LogFormat::Pretty, false) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .compact()
            .boxed(),
        (LogFormat::Pretty, true) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .compact()
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Json, false) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        (LogFormat::Json, true) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A second subscriber in the same process (tests) is not an error worth failing on.
    let _ = tracing_subscriber::registry()
        .with(env_filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();

    let prometheus_recorder = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .map(|b| b.build_recorder())
        .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
    let prometheus = prometheus_recorder.handle();
    let otel_meter = meter.as_ref().map(|_| global::meter("ferry"));
    let _ = metrics::set_global_recorder(FanoutRecorder {
        prometheus: prometheus_recorder,
        otel: otel_meter,
        gauges: Mutex::new(HashMap::new()),
    });
    let upkeep = prometheus.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| TelemetryError::Otlp(format!("spawning metrics upkeep: {e}")))?;

    let installed = INSTALLED.get_or_init(|| Installed {
        prometheus,
        tracer,
        meter,
    });
    Ok(Telemetry {
        prometheus: installed.prometheus.clone(),
    })
}

/// Writes the current span's trace context into NATS headers (`traceparent`, `tracestate`).
pub fn inject_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

/// Makes `span` a child of the trace context carried in NATS headers, if any.
pub fn set_parent_from(span: &tracing::Span, headers: Option<&HeaderMap>) {
    // A span nobody records (no exporter, or filtered out) needs no parent: skip parsing.
    if span.is_disabled() {
        return;
    }
    if let Some(headers) = headers {
        let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        let _ = span.set_parent(parent);
    }
}

/// Links `span` to `cause` (a trace that caused it, without being its parent): a
/// webhook call announcing many orders links to each order's own trace.
pub fn add_link(span: &tracing::Span, cause: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt;
    let context = cause.context();
    let cause = context.span().span_context().clone();
    if cause.is_valid() {
        span.add_link(cause);
    }
}

/// The trace id of the current span, as hex (empty without OpenTelemetry).
pub fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let id = span.span_context().trace_id();
    if id == opentelemetry::trace::TraceId::INVALID {
        String::new()
    } else {
        id.to_string()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Sends every `metrics` instrument to Prometheus and, when OTLP is on, to OpenTelemetry.
struct FanoutRecorder {
    prometheus: PrometheusRecorder,
    otel: Option<opentelemetry::metrics::Meter>,
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

struct CounterPair {
    prometheus: Counter,
    otel: opentelemetry::metrics::Counter<u64>,
    attributes: Vec<KeyValue>,
}

impl CounterFn for CounterPair {
    fn increment(&self, value: u64) {
        self.prometheus.increment(value);
        self.otel.add(value, &self.attributes);
    }

    fn absolute(&self, value: u64) {
        self.prometheus.absolute(value);
    }
}

struct GaugePair {
    prometheus: Gauge,
    otel: opentelemetry::metrics::Gauge<f64>,
    attributes: Vec<KeyValue>,
    value: Arc<AtomicU64>,
}

impl GaugePair {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut current = self.value.load(Ordering::Relaxed);
        loop {
            let next = f(f64::from_bits(current)).to_bits();
            match self.value.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.otel.record(f64::from_bits(next), &self.attributes);
                    return;
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl GaugeFn for GaugePair {
    fn increment(&self, value: f64) {
        self.prometheus.increment(value);
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.prometheus.decrement(value);
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.prometheus.set(value);
        self.update(|_| value);
    }
}

struct HistogramPair {
    prometheus: Histogram,
    otel: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HistogramFn for HistogramPair {
    fn record(&self, value: f64) {
        self.prometheus.record(value);
        self.otel.record(value, &self.attributes);
    }
}

impl Recorder for FanoutRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let prometheus = self.prometheus.register_counter(key, metadata);
        match &self.otel {
            None => prometheus,
            Some(meter) => Counter::from_arc(Arc::new(CounterPair {
                prometheus,
                otel: meter.u64_counter(key.name().to_owned()).build(),
                attributes: attributes(key),
            })),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let prometheus = self.prometheus.register_gauge(key, metadata);
        match &self.otel {
            None => prometheus,
            Some(meter) => {
                let value = self
                    .gauges
                    .lock()
                    .map(|mut g| g.entry(key.clone()).or_default().clone())
                    .unwrap_or_default();
                Gauge::from_arc(Arc::new(GaugePair {
                    prometheus,
                    otel: meter.f64_gauge(key.name().to_owned()).build(),
                    attributes: attributes(key),
                    value,
                }))
            }
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let prometheus = self.prometheus.register_histogram(key, metadata);
        match &self.otel {
            None => prometheus,
            Some(meter) => Histogram::from_arc(Arc::new(HistogramPair {
                prometheus,
                otel: meter.f64_histogram(key.name().to_owned()).build(),
                attributes: attributes(key),
            })),
        }
    }
}

#[cfg(test)]
mod metric_names {
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every metric the chart's alerts and dashboard and the metrics reference name is
    /// one a service really registers (by its literal name in the code).
    #[test]
    fn alerts_and_docs_name_only_metrics_ferry_exports() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        sources(&root.join("crates"), &mut files);
        let code: String = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect();
        for doc in [
            "helm/ferry/files/alerts.yaml",
            "helm/ferry/files/dashboard.json",
            "docs/operations/metrics.md",
        ] {
            let text = std::fs::read_to_string(root.join(doc)).expect(doc);
            let named: std::collections::BTreeSet<&str> = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("ferry_") && w.len() > 6)
                .collect();
            assert!(!named.is_empty(), "{doc} names no metric");
            for name in named {
                assert!(
                    code.contains(&format!("\"{name}\"")),
                    "{doc} names {name}, which no service registers"
                );
            }
        }
    }
}
