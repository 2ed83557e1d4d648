//! `ferry reconcile run` and the month-end report on the real chain: orders through the
//! stack into the ERP simulator, changes made behind Ferry's back, an order Ferry never
//! saw, a sale entered by hand; a run stopped half-way and run again; two brands checked
//! side by side in one database.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry::reconcile::{Tally, check_tenant, month_report};
use ferry::stack::{Stack, StackOptions};
use ferry_reconciler::report::{Period, Report, html};
use ferry_sim_centra::OrderMix;
use ferry_sim_erp::Change;
use ferry_testing::TestEnv;
use secrecy::ExposeSecret as _;

/// A run with `--json`: the variance lines, and the summary line.
pub(crate) async fn run_json(
    config: &ferry_config::Config,
    tenant: &str,
) -> (Vec<serde_json::Value>, serde_json::Value, Tally) {
    let mut out = Vec::new();
    let tally = check_tenant(config, tenant, None, true, &mut out)
        .await
        .expect("the run completes");
    let text = String::from_utf8(out).expect("utf-8");
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let summary = lines.pop().expect("a summary line");
    (lines, summary, tally)
}

/// Every month of the simulator's order dates (2025), and the month the sale by hand was
/// entered in (now).
fn months() -> Vec<Period> {
    let mut months: Vec<Period> = (1..=12)
        .map(|m| Period::month(&format!("2025-{m:02}")).expect("month"))
        .collect();
    months.push(Period::month(&chrono::Utc::now().format("%Y-%m").to_string()).expect("now"));
    months
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_finds_every_variance_resumes_after_a_crash_and_the_month_end_report_adds_up() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.reconciler.grace = Duration::ZERO;
    config.reconciler.batch = 7;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 21,
        centra_requests_per_10s: 1000,
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options).await.expect("stack starts");
    let config = (*stack.config).clone();
    let store = env.store().await;
    // Two orders Ferry never hears of (their webhooks lost, no resync runs): one between
    // orders it has (a gap in its numbers), one after the last.
    let mut numbers = stack.centra.generate(15, &OrderMix::default());
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 15, Duration::from_secs(60)).await;
    assert_eq!(posted, 15);
    stack.centra.configure_webhooks(None);
    let lost_between = stack.centra.generate(1, &OrderMix::default())[0];
    stack
        .centra
        .configure_webhooks(Some(ferry_sim_centra::WebhookConfig {
            url: stack.webhook_url.clone(),
            secret: config.tenants[0]
                .centra
                .webhook_secret
                .expose_secret()
                .to_owned(),
            ..ferry_sim_centra::WebhookConfig::default()
        }));
    numbers.extend(stack.centra.generate(15, &OrderMix::default()));
    let posted =
        ferry_testing::wait_for_state(&store, "acme", "posted", 30, Duration::from_secs(60)).await;
    assert_eq!(posted, 30);
    stack.centra.configure_webhooks(None);
    let lost_after = stack.centra.generate(1, &OrderMix::default())[0];
    // Behind Ferry's back, in the ERP.
    assert!(
        stack
            .erp
            .change(&numbers[0].to_string(), Change::ChangePrice)
    );
    assert!(stack.erp.change(&numbers[1].to_string(), Change::Delete));
    assert!(stack.erp.change(&numbers[2].to_string(), Change::Duplicate));
    let by_hand = stack
        .erp
        .enter_by_hand(ferry_sim_erp::NewSalesOrder::counter_sale(
            "COUNTER-SALE",
            50_000,
        ));

    // A run that dies after its first batches (the process killed): what it recorded
    // stands, and nothing is counted twice when it runs again.
    let crashed = {
        let config = config.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            check_tenant(&config, "acme", None, true, &mut out).await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store
        .verdict_counts("acme")
        .await
        .expect("counts")
        .reconciled
        < 7
    {
        assert!(tokio::time::Instant::now() < deadline, "the first batch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crashed.abort();
    let _ = crashed.await;

    let (variances, summary, tally) = run_json(&config, "acme").await;
    let mut found: BTreeMap<String, Vec<Option<i64>>> = BTreeMap::new();
    for v in &variances {
        for key in [
            "order",
            "cause",
            "owner",
            "money_minor",
            "currency",
            "detail",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        assert!(v["money_minor"].as_i64().is_some_and(|m| m > 0), "{v}");
        found
            .entry(v["cause"].as_str().expect("cause").to_owned())
            .or_default()
            .push(v["order"].as_i64());
    }
    let want: BTreeMap<String, Vec<Option<i64>>> = [
        ("altered_in_erp", Some(numbers[0])),
        ("deleted_in_erp", Some(numbers[1])),
        ("duplicate", Some(numbers[2])),
        ("missing", Some(lost_between)),
        ("missing", Some(lost_after)),
        ("unexplained", None),
    ]
    .into_iter()
    .fold(BTreeMap::new(), |mut want, (c, n)| {
        want.entry(c.to_owned()).or_insert_with(Vec::new).push(n);
        want
    });
    assert_eq!(found, want, "every variance once, nothing else");
    // 32 orders: 4 incomplete (deleted, duplicated, two never posted), 5 inaccurate.
    assert_eq!(
        summary,
        serde_json::json!({
            "checked": 32, "complete_pct": 87.50, "accurate_pct": 84.38,
            "variances": 6, "pending": 0,
            // The two orders Ferry never saw were not posted within the brand's target.
            "late": 2
        })
    );
    assert_eq!(
        (tally.checked, tally.complete, tally.accurate),
        (32, 28, 27)
    );
    let counts = store.verdict_counts("acme").await.expect("counts");
    assert_eq!((counts.reconciled, counts.variance), (27, 5));

    // Each is an exception for the team that acts; a second run raises none twice.
    let open = store.open_exceptions("acme").await.expect("exceptions");
    for lost in [lost_between, lost_after] {
        let missing = open
            .iter()
            .find(|e| e.kind == "order_missing_in_erp" && e.order_number == Some(lost))
            .expect("each lost order is an exception");
        assert_eq!(missing.owner, "engineering");
        assert!(
            missing.reason.contains("never seen by Ferry"),
            "{missing:?}"
        );
    }
    let (_, again, _) = run_json(&config, "acme").await;
    assert_eq!(again, summary);
    assert_eq!(
        store
            .open_exceptions("acme")
            .await
            .expect("exceptions")
            .len(),
        open.len()
    );

    // The month-end report: the periods together hold every order once; a month whose
    // orders are all reconciled agrees across Centra, the ERP and the ledger.
    let mut reports: Vec<Report> = Vec::new();
    for period in months() {
        reports.push(month_report(&store, "acme", period).await.expect("report"));
    }
    let orders: u64 = reports
        .iter()
        .flat_map(|r| &r.currencies)
        .map(|c| c.centra.orders + c.centra.cancelled)
        .sum();
    assert_eq!(orders, 32);
    let listed: usize = reports.iter().map(|r| r.variances.len()).sum();
    assert_eq!(listed, 6);
    let checked: u64 = reports.iter().map(|r| r.standing.checked).sum();
    assert_eq!(checked, 32);
    let mut agreeing = 0;
    for r in &reports {
        for c in &r.currencies {
            if r.variances.iter().any(|v| v.currency == c.currency) {
                continue;
            }
            assert_eq!(c.centra.gross, c.erp.gross, "{} {}", r.period, c.currency);
            assert_eq!(
                c.centra.gross, c.ledger.gross,
                "{} {}",
                r.period, c.currency
            );
            assert_eq!(c.centra.tax, c.erp.tax, "{} {}", r.period, c.currency);
            let by_rate: i64 = c.centra.tax_by_rate.values().map(|r| r.tax).sum();
            assert_eq!(by_rate, c.centra.tax);
            agreeing += 1;
        }
    }
    assert!(agreeing > 0, "some month and currency without variances");
    let now = reports.last().expect("this month");
    let sale = now
        .variances
        .iter()
        .find(|v| v.erp_reference.as_deref() == Some(by_hand.as_str()))
        .expect("the sale by hand in this month's report");
    assert_eq!(sale.money_minor, 50_000);

    // The same period gives the same figures, in every format.
    let deleted_month = reports
        .iter()
        .find(|r| r.variances.iter().any(|v| v.order == numbers[1]))
        .expect("the deleted order's month");
    let period = Period::month(&deleted_month.period).expect("period");
    let again = month_report(&store, "acme", period).await.expect("report");
    assert_eq!(&again, deleted_month);
    assert_eq!(html(&again), html(deleted_month));
    assert_eq!(again.csv().expect("csv"), deleted_month.csv().expect("csv"));
    let page = html(&again);
    assert!(page.contains("deleted_in_erp"), "the variance is listed");
    opens_and_prints_in_chromium(&page, &env.prefix);

    stack.shutdown().await;
    env.cleanup().await;
}

/// The report as a controller gets it: opened in a real (headless) Chromium, it is the
/// document Ferry wrote — every table row and both charts, nothing the parser had to mend
/// — and it prints to PDF.
fn opens_and_prints_in_chromium(page: &str, name: &str) {
    let dir = std::env::temp_dir().join(format!("ferry-report-{name}"));
    std::fs::create_dir_all(&dir).expect("a directory");
    let file = dir.join("report.html");
    std::fs::write(&file, page).expect("the report written");
    let url = format!("file://{}", file.display());
    let chromium = |extra: &[&str]| {
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-pdf-header-footer",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"]).stdout).expect("utf-8");
    for tag in ["<tr", "<svg", "<table", "<polyline", "<rect"] {
        let written = page.matches(tag).count();
        assert!(written > 0, "{tag} in the report");
        assert_eq!(dom.matches(tag).count(), written, "{tag} as written");
    }
    let pdf = dir.join("report.pdf");
    chromium(&[&format!("--print-to-pdf={}", pdf.display())]);
    let printed = std::fs::read(&pdf).expect("the PDF");
    assert!(printed.starts_with(b"%PDF"), "a PDF");
    // Page objects, not the page tree (`/Type /Pages`).
    let pages = printed
        .windows(12)
        .filter(|w| w.starts_with(b"/Type /Page") && w[11] != b's')
        .count();
    assert!(pages >= 1, "at least one page");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two brands in one database, each with its own Centra and ERP: a change in one brand's
/// ERP is that brand's variance only, and each brand's verdicts are its own, even where
/// order numbers coincide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brands_reconcile_independently() {
    let env = TestEnv::new().await;
    let other = TestEnv::new().await;
    let mut first = env.config();
    first.reconciler.grace = Duration::ZERO;
    let mut second = other.config();
    second.reconciler.grace = Duration::ZERO;
    // One database for both brands; each its own streams.
    second.database.url = first.database.url.clone();
    let acme = Stack::start(
        first,
        StackOptions {
            tenant: "acme".into(),
            seed: 31,
            centra_requests_per_10s: 1000,
            ..StackOptions::default()
        },
    )
    .await
    .expect("acme's stack");
    let globex = Stack::start(
        second,
        StackOptions {
            tenant: "globex".into(),
            seed: 32,
            centra_requests_per_10s: 1000,
            ..StackOptions::default()
        },
    )
    .await
    .expect("globex's stack");
    let store = env.store().await;
    let acme_orders = acme.centra.generate(10, &OrderMix::default());
    let globex_orders = globex.centra.generate(12, &OrderMix::default());
    for (tenant, n) in [("acme", 10), ("globex", 12)] {
        let posted =
            ferry_testing::wait_for_state(&store, tenant, "posted", n, Duration::from_secs(60))
                .await;
        assert_eq!(posted, n, "{tenant}");
    }
    assert!(
        acme_orders.iter().any(|n| globex_orders.contains(n)),
        "order numbers coincide across the brands"
    );
    assert!(
        globex
            .erp
            .change(&globex_orders[0].to_string(), Change::ChangePrice)
    );

    let (acme_found, acme_summary, _) = run_json(&acme.config, "acme").await;
    let (globex_found, globex_summary, _) = run_json(&globex.config, "globex").await;
    assert!(acme_found.is_empty(), "{acme_found:?}");
    assert_eq!(acme_summary["checked"], 10);
    assert_eq!(globex_summary["checked"], 12);
    assert_eq!(globex_found.len(), 1, "{globex_found:?}");
    assert_eq!(globex_found[0]["order"], globex_orders[0]);
    assert_eq!(globex_found[0]["cause"], "altered_in_erp");
    let acme_counts = store.verdict_counts("acme").await.expect("counts");
    let globex_counts = store.verdict_counts("globex").await.expect("counts");
    assert_eq!((acme_counts.reconciled, acme_counts.variance), (10, 0));
    assert_eq!((globex_counts.reconciled, globex_counts.variance), (11, 1));
    assert!(
        store
            .open_exceptions("acme")
            .await
            .expect("exceptions")
            .is_empty()
    );

    acme.shutdown().await;
    globex.shutdown().await;
    other.cleanup().await;
    env.cleanup().await;
}
