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

/// The processes `pid` started (from every thread's `children` list).
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in list
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let name = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            found.push((child, name.trim().to_owned()));
        }
    }
    found
}

/// Running, not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("State:"))
            .is_some_and(|l| !l.contains('Z'))
    })
}

/// `ferry up` watches its servers: a nats-server killed with SIGKILL is started again and
/// orders keep reaching the ERP; and when `ferry up` itself is killed, its nats-server and
/// PostgreSQL die with it instead of living on as orphans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_restarts_a_dead_server_and_its_servers_die_with_it() {
    use tokio::io::AsyncBufReadExt;
    let mut up = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["up", "--duration", "120", "--orders-per-sec", "2"])
        .env_remove("RUST_LOG")
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_NATS__URL")
        .env_remove("FERRY_DATABASE__URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ferry up runs");
    let pid = up.id().expect("a pid");
    let mut lines = tokio::io::BufReader::new(up.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let mut next_line = async || -> String {
        tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("ferry up keeps talking")
            .expect("its output")
            .expect("ferry up still runs")
    };
    while !seen.contains("Press Ctrl-C to stop.") {
        seen.push_str(&next_line().await);
        seen.push('\n');
    }
    let servers = children(pid);
    let nats = servers
        .iter()
        .find(|(_, name)| name == "nats-server")
        .map(|(p, _)| *p)
        .unwrap_or_else(|| panic!("a nats-server among {servers:?}"));
    assert!(
        servers.iter().any(|(_, name)| name == "postgres"),
        "a postgres among {servers:?}"
    );
    // Orders flow, then the broker is killed.
    loop {
        let line = next_line().await;
        if posted(&line) > 0 {
            break;
        }
    }
    ferry_testing::infra::owned::kill_hard(nats);
    loop {
        let line = next_line().await;
        assert!(!line.contains("stopping"), "{line}");
        if line.contains("nats-server exited") {
            break;
        }
    }
    let before = loop {
        let line = next_line().await;
        if line.starts_with("orders in Centra") {
            break posted(&line);
        }
    };
    let after = loop {
        let line = next_line().await;
        if line.starts_with("orders in Centra") && posted(&line) > before {
            break posted(&line);
        }
    };
    assert!(after > before, "orders reach the ERP after the restart");

    // Now ferry up itself is killed: its servers must not outlive it.
    let servers = children(pid);
    assert!(servers.len() >= 2, "{servers:?}");
    ferry_testing::infra::owned::kill_hard(pid);
    let _ = up.wait().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (server, name) in servers {
        while alive(server) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} ({server}) outlived ferry up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
