//! `ferry up` as a newcomer runs it: the binary itself, its own nats-server and PostgreSQL,
//! and what it prints — one line per service ready, where to look, the status line — and
//! nothing else: no migration notices, no connection errors at shutdown.

use std::process::Stdio;
use std::time::Duration;

async fn run_up(args: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("up")
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("FERRY_CONFIG")
            .env_remove("FERRY_NATS__URL")
            .env_remove("FERRY_DATABASE__URL")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("ferry up stops by itself")
    .expect("ferry up runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

/// Orders posted to the ERP, from the last status line.
fn posted(text: &str) -> u64 {
    text.lines()
        .rev()
        .find_map(|l| {
            l.split(" | ")
                .find_map(|part| part.strip_prefix("posted to the ERP "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_prints_what_a_newcomer_needs_and_nothing_else() {
    let text = run_up(&["--duration", "12"]).await;
    for service in ferry::stack::SERVICES {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(service) && l.trim_end().ends_with("ready")),
            "{service} ready\n{text}"
        );
    }
    assert!(text.contains("Ferry is running"), "{text}");
    assert!(text.contains("webhook endpoint"), "{text}");
    assert!(text.contains("operations API (gRPC)"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("console")
            && l.trim_end().starts_with("  console")
            && l.contains("http://127.0.0.1:")),
        "the console's address on a line of its own\n{text}"
    );
    assert!(
        text.contains("sign in with the access key ferry_"),
        "a key to sign in to the console with\n{text}"
    );
    assert!(
        text.contains("FERRY_API__TOKEN=ferry_"),
        "a token to try it with\n{text}"
    );
    assert!(posted(&text) > 0, "orders reached the ERP\n{text}");
    for noise in [
        "INFO",
        "WARN",
        "ERROR",
        "IO error",
        "already exists, skipping",
    ] {
        assert!(!text.contains(noise), "{noise:?} in the output:\n{text}");
    }
}

/// With `--erp tryton` the demo tenant posts to a real Tryton the harness starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_with_tryton_posts_orders_into_tryton() {
    let text = run_up(&[
        "--erp",
        "tryton",
        "--duration",
        "30",
        "--orders-per-sec",
        "1",
    ])
    .await;
    assert!(text.contains("ERP: Tryton"), "{text}");
    assert!(posted(&text) > 0, "orders reached Tryton\n{text}");
    for noise in ["ERROR", "IO error"] {
        assert!(!text.contains(noise), "{noise:?} in the output:\n{text}");
    }
}
