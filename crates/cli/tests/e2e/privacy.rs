//! No personal data or secrets in logs or traces: orders run through every service (each
//! its own process, logging its own crates at debug level and exporting every span to a
//! real OTLP receiver) under the chaos run's faults, so the error paths log too; then
//! every log line and every string of every span is searched for each customer's e-mail,
//! name, street address and phone number, the Centra token and the webhook secret.

use ferry::bench_chaos::{ChaosArgs, Observe, run_observed};

use crate::otlp::Receiver;

/// Ferry's own crates at debug level, everything else at info.
const VERBOSE: &str = "info,ferry=debug,ferry_runtime=debug,ferry_platform=debug,\
    ferry_store=debug,ferry_centra=debug,ferry_erp=debug,ferry_erp_http=debug,\
    ferry_ingest=debug,ferry_transform=debug,ferry_erp_writer=debug,ferry_fulfilment=debug,\
    ferry_inventory=debug,ferry_reconciler=debug,ferry_ops=debug,ferry_erp_sources=debug";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_or_secret_reaches_a_log_line_or_a_span() {
    let (receiver, addr) = Receiver::start().await;
    let logs = tempfile::tempdir().expect("a directory");
    let args = ChaosArgs {
        orders: 200,
        rate: 20,
        kill_every_ms: 3_000,
        broker_restarts: 0,
        db_restarts: 0,
        replicas: 1,
        skus: 5,
        settle_secs: 180,
        seed: 23,
        exe: Some(env!("CARGO_BIN_EXE_ferry").into()),
    };
    let observe = Observe {
        log_filter: VERBOSE.to_owned(),
        otlp_endpoint: Some(format!("http://{addr}")),
        keep_logs: Some(logs.path().to_owned()),
    };
    let (report, evidence) = run_observed(&args, &observe).await.expect("the run");
    assert!(report.clean(), "{report:?}");
    assert!(
        evidence.personal.len() >= 200,
        "customers' data to look for: {}",
        evidence.personal.len()
    );

    let mut lines = Vec::new();
    for entry in std::fs::read_dir(logs.path()).expect("the logs").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("a log");
        lines.extend(text.lines().map(str::to_owned));
    }
    let texts = receiver.texts.lock().map(|t| t.clone()).unwrap_or_default();
    // The search can find something: the logs and spans name orders by number.
    assert!(lines.len() > 500, "{} log lines", lines.len());
    assert!(texts.len() > 1_000, "{} span strings", texts.len());
    let order = evidence.orders[0].to_string();
    assert!(
        texts.iter().any(|t| t.contains(&order)),
        "spans carry order numbers"
    );
    assert!(
        lines.iter().any(|l| l.contains(&order)),
        "log lines carry order numbers"
    );
    for planted in evidence.secrets.iter().chain(&evidence.personal) {
        let planted_lower = planted.to_lowercase();
        if let Some(line) = lines
            .iter()
            .find(|l| l.to_lowercase().contains(&planted_lower))
        {
            panic!("{planted:?} in a log line: {line}");
        }
        if let Some(text) = texts
            .iter()
            .find(|t| t.to_lowercase().contains(&planted_lower))
        {
            panic!("{planted:?} in a span: {text}");
        }
    }
}
