//! `ferry bench reconcile`: a full sweep of a brand with a million orders. The Centra
//! simulator, the ledger and the ERP simulator each hold the orders (three currencies),
//! with at least `--per-kind` variances of every cause planted; `ferry reconcile run
//! --json` then runs as its own process, timed and its peak memory read, and what it
//! reports is compared with what was planted. The baseline, measured in the same run, reads
//! the three sources alone (every ledger page, Centra's snapshots, the ERP's documents)
//! with the same batches and concurrency, judging nothing. The last line is one JSON object.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_domain::{LineKind, Release, Rules, SalesOrder, Snapshot};
use ferry_erp::ReadBack as _;
use ferry_reconciler::compare::Cause;
use ferry_sim_centra::{CentraSim, OrderMix, Quotas, SimConfig};
use ferry_sim_erp::{Change, ErpSim, NewSalesOrder};
use ferry_store::Store;
use ferry_store::reconciliation::Due;
use futures::TryStreamExt as _;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::stack::{LocalInfra, local_config};

const TENANT: &str = "bench";
/// Centra's three currencies in the simulator: markets 1 (SEK), 2 (GBP) and 3 (EUR).
const MARKETS: [i64; 3] = [1, 2, 3];

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// Orders in Centra, the ledger and the ERP.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// Variances planted of each cause (at least).
    #[arg(long, default_value_t = 1_000)]
    pub per_kind: usize,
    /// Orders per batch (`[reconciler] batch`).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Batches in flight (`[reconciler] batches_in_flight`).
    #[arg(long, default_value_t = 2)]
    pub in_flight: usize,
}

#[derive(Serialize)]
struct Outcome {
    orders: usize,
    seconds: f64,
    orders_per_sec: f64,
    peak_rss_mb: f64,
    planted: usize,
    found: usize,
    false_positives: usize,
    baseline_seconds: f64,
    ratio_to_baseline: f64,
    planted_by_cause: BTreeMap<&'static str, usize>,
    found_by_cause: BTreeMap<&'static str, usize>,
    setup_seconds: f64,
}

/// What was planted: the cause each order (or, for a document entered by hand, each ERP
/// reference) must be reported with.
#[derive(Default)]
struct Planted {
    orders: HashMap<i64, Cause>,
    documents: HashMap<String, Cause>,
}

impl Planted {
    fn by_cause(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for cause in self.orders.values().chain(self.documents.values()) {
            *counts.entry(cause.as_str()).or_default() += 1;
        }
        counts
    }
}

/// One ledger row as Ferry would have written it.
struct LedgerLine {
    number: i64,
    state: &'static str,
    fingerprint: String,
    currency: String,
    gross: i64,
    tax: i64,
    erp_reference: Option<String>,
    erp_gross: Option<i64>,
    erp_tax: Option<i64>,
}

pub async fn reconcile(args: ReconcileArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-reconcile-{}", std::process::id()));
    let infra = LocalInfra::start(dir.join("infra")).await?;
    let mut config = local_config(&infra)?;
    config.nats.prefix = "benchrec".into();
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let started = Instant::now();

    let centra = CentraSim::start(
        SimConfig {
            quotas: Quotas::unlimited(),
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await?;
    let erp = ErpSim::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        shutdown.clone(),
    )
    .await?;
    let mix = OrderMix {
        markets: MARKETS.to_vec(),
        ..OrderMix::default()
    };
    let mut numbers = Vec::with_capacity(args.orders);
    while numbers.len() < args.orders {
        let n = (args.orders - numbers.len()).min(100_000);
        numbers.extend(centra.generate(n, &mix));
    }
    eprintln!(
        "Centra: {} orders in {:.1} s",
        numbers.len(),
        started.elapsed().as_secs_f64()
    );

    // The brand maps every SKU but one to an ERP item: the orders with that one are held.
    let (unmapped, mapping) = mapping(&centra, &numbers, args.per_kind)?;
    store
        .upsert_sku_mappings(TENANT, &mapping)
        .await
        .context("the SKU mapping")?;
    let items: HashMap<String, String> = mapping.into_iter().collect();
    let rules = Rules {
        erp_item_equals_sku: false,
        ..Rules::default()
    };

    let planted = load(
        &args, &centra, &erp, &store, &numbers, &rules, &items, &unmapped,
    )
    .await?;
    let setup_seconds = round1(started.elapsed().as_secs_f64());
    eprintln!(
        "loaded and planted in {setup_seconds} s: {:?}",
        planted.by_cause()
    );

    let config_file = dir.join("ferry.toml");
    write_config(&config_file, &config, &centra, &erp, &args)?;
    let baseline = baseline(&store, &centra, &erp, &args).await?;
    eprintln!("baseline (reading the three sources): {baseline:.1} s");

    let (seconds, peak_rss_mb, stdout) = run_reconciler(&config_file).await?;
    let (found, found_by_cause, false_positives) = score(&stdout, &planted)?;
    let planted_total = planted.orders.len() + planted.documents.len();
    let outcome = Outcome {
        orders: args.orders,
        seconds: round1(seconds),
        orders_per_sec: (args.orders as f64 / seconds).round(),
        peak_rss_mb: round1(peak_rss_mb),
        planted: planted_total,
        found,
        false_positives,
        baseline_seconds: round1(baseline),
        ratio_to_baseline: ((seconds / baseline.max(0.001)) * 100.0).round() / 100.0,
        planted_by_cause: planted.by_cause(),
        found_by_cause,
        setup_seconds,
    };
    drop(infra);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Every SKU the orders hold (a bundle's components, not the bundle), mapped to itself,
/// but one: the least frequent held by at least `per_kind` orders, left unmapped.
fn mapping(
    centra: &CentraSim,
    numbers: &[i64],
    per_kind: usize,
) -> anyhow::Result<(String, Vec<(String, String)>)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for &n in numbers {
        let Some(order) = centra.state.order(n) else {
            continue;
        };
        let mut skus: Vec<&str> = Vec::new();
        for line in &order.lines {
            if line.bundle_items.is_empty() {
                skus.push(&line.sku);
            }
            skus.extend(line.bundle_items.iter().map(|b| b.sku.as_str()));
        }
        skus.sort_unstable();
        skus.dedup();
        for sku in skus {
            *counts.entry(sku.to_owned()).or_default() += 1;
        }
    }
    let unmapped = counts
        .iter()
        .filter(|(_, n)| **n >= per_kind)
        .min_by_key(|(sku, n)| (**n, (*sku).clone()))
        .map(|(sku, _)| sku.clone())
        .context("no SKU is in enough orders to plant unmapped items: more orders, please")?;
    let mut mapping: Vec<(String, String)> = counts
        .into_keys()
        .filter(|sku| *sku != unmapped)
        .map(|sku| (sku.clone(), sku))
        .collect();
    mapping.sort();
    Ok((unmapped, mapping))
}

/// The ERP document Ferry would post for `order`.
fn document(order: &SalesOrder) -> NewSalesOrder {
    NewSalesOrder {
        external_ref: order.order_number.to_string(),
        currency: order.currency.clone(),
        order_date: order.order_date.clone(),
        customer: serde_json::Value::Null,
        delivery: None,
        lines: order
            .lines
            .iter()
            .map(|l| ferry_sim_erp::Line {
                kind: match l.kind {
                    LineKind::Item => "item",
                    LineKind::Shipping => "shipping",
                    LineKind::Handling => "handling",
                }
                .to_owned(),
                erp_item: l.erp_item.clone().unwrap_or_default(),
                sku: l.sku.clone(),
                centra_line_id: l.centra_line_id,
                quantity: l.quantity,
                tax_rate: l.tax_rate.normalize().to_string(),
                tax_code: None,
                gross_minor: l.gross,
                tax_minor: l.tax,
                net_minor: l.net,
                description: String::new(),
            })
            .collect(),
        payment_term: None,
        carrier: None,
        sales_channel: None,
    }
}

/// The ledger and the ERP as Ferry would have left them, then the variances planted: a
/// disjoint set of orders per cause.
#[allow(clippy::too_many_arguments)]
async fn load(
    args: &ReconcileArgs,
    centra: &CentraSim,
    erp: &ErpSim,
    store: &Store,
    numbers: &[i64],
    rules: &Rules,
    items: &HashMap<String, String>,
    unmapped: &str,
) -> anyhow::Result<Planted> {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        orders: Vec<Snapshot>,
    }
    let mut planted = Planted::default();
    // Causes planted by leaving something out, by order position: every `stride`-th order
    // goes to one of 12 slots in turn, so each cause spreads over the whole book and the
    // sets do not meet; the changes in the ERP are made on orders off the stride.
    let per = args.per_kind;
    let stride = (numbers.len() / (per * 12).max(1)).max(1);
    let pick = |i: usize, slot: usize| i.is_multiple_of(stride) && (i / stride) % 12 == slot;
    let mut ledger = Vec::with_capacity(10_000);
    let mut documents = Vec::with_capacity(10_000);
    for chunk in numbers.chunks(1_000) {
        let orders: Vec<_> = chunk
            .iter()
            .filter_map(|&n| centra.state.order(n))
            .collect();
        let answer = ferry_sim_centra::fast::answer(&orders, &serde_json::json!({}));
        let answer: Answer = serde_json::from_slice(&answer).context("the snapshots")?;
        for snapshot in &answer.data.orders {
            let order = ferry_domain::transform(snapshot, rules, items);
            let i = (order.order_number - numbers[0]) as usize;
            let holds_unmapped = order
                .lines
                .iter()
                .any(|l| l.sku.as_deref() == Some(unmapped));
            let line = |state: &'static str, posted: bool| LedgerLine {
                number: order.order_number,
                state,
                fingerprint: order.fingerprint(),
                currency: order.currency.clone(),
                gross: order.totals.gross,
                tax: order.totals.tax,
                erp_reference: posted.then(String::new),
                erp_gross: posted.then_some(order.totals.gross),
                erp_tax: posted.then_some(order.totals.tax),
            };
            match order.release {
                Release::Cancelled => ledger.push(line("cancelled", false)),
                Release::Held => ledger.push(line("held", false)),
                Release::Rejected if holds_unmapped => {
                    planted
                        .orders
                        .insert(order.order_number, Cause::UnmappedItem);
                    ledger.push(line("held", false));
                }
                Release::Rejected => anyhow::bail!(
                    "order {} is rejected: {:?}",
                    order.order_number,
                    order.problems
                ),
                Release::Ready if i > 0 && pick(i, 0) => {
                    // Never seen by Ferry: in Centra only. Not the first order: one lost
                    // before the first Ferry ever saw is the brand's history as far as
                    // Ferry can tell (`ferry reconcile run --since` lists Centra for it).
                    planted.orders.insert(order.order_number, Cause::Missing);
                }
                Release::Ready if pick(i, 1) => {
                    // Seen, never posted.
                    planted.orders.insert(order.order_number, Cause::Missing);
                    ledger.push(line("ready", false));
                }
                Release::Ready => {
                    ledger.push(line("posted", true));
                    documents.push(document(&order));
                }
            }
        }
        if ledger.len() >= 10_000 {
            write_ledger(store, std::mem::take(&mut ledger)).await?;
        }
        if documents.len() >= 10_000 {
            erp.import(std::mem::take(&mut documents));
        }
    }
    write_ledger(store, ledger).await?;
    erp.import(documents);

    // Changes behind Ferry's back, on posted orders clear of the causes above.
    let posted: Vec<i64> = numbers
        .iter()
        .enumerate()
        .filter(|&(i, n)| !i.is_multiple_of(stride) && !planted.orders.contains_key(n))
        .map(|(_, n)| *n)
        .filter(|n| erp.order(&n.to_string()).is_some())
        .collect();
    let plan: [(Change, Cause); 9] = [
        (Change::DropLine, Cause::AlteredInErp),
        (Change::ChangePrice, Cause::AlteredInErp),
        (Change::TaxRounding, Cause::Rounding),
        (Change::WrongCurrency, Cause::Currency),
        (Change::Duplicate, Cause::Duplicate),
        (Change::Delete, Cause::DeletedInErp),
        (Change::Cancel, Cause::OneSidedCancellation),
        (Change::ChangePrice, Cause::RecordedDifferently),
        (Change::ChangePrice, Cause::AmendmentNotApplied),
    ];
    let step = (posted.len() / (plan.len() * per + 1)).max(1);
    let mut candidates = posted.iter().step_by(step);
    for (k, (change, cause)) in plan.iter().enumerate() {
        // Two changes count towards one cause (altered): half each.
        let wanted = if k < 2 { per.div_ceil(2) } else { per };
        let mut done = 0;
        while done < wanted {
            let n = *candidates.next().context("not enough orders to plant in")?;
            if !erp.change(&n.to_string(), *change) {
                continue;
            }
            match cause {
                Cause::RecordedDifferently => {
                    // The ERP answered the changed totals when Ferry posted.
                    let doc = erp.order(&n.to_string()).context("the document")?;
                    set_recorded(store, n, doc.gross_minor, doc.tax_minor).await?;
                }
                Cause::AmendmentNotApplied => {
                    // Centra's order changed after posting: the ledger holds the earlier one.
                    set_fingerprint(store, n, "an-earlier-version").await?;
                }
                _ => {}
            }
            planted.orders.insert(n, *cause);
            done += 1;
        }
    }
    for k in 0..per {
        let reference = erp.enter_by_hand(NewSalesOrder::counter_sale(
            "COUNTER-SALE",
            10_000 + k as i64,
        ));
        planted.documents.insert(reference, Cause::Unexplained);
    }
    Ok(planted)
}

/// Ledger rows in one statement: accepted an hour ago (settled), posted two seconds later.
async fn write_ledger(store: &Store, rows: Vec<LedgerLine>) -> anyhow::Result<()> {
    let numbers: Vec<i64> = rows.iter().map(|r| r.number).collect();
    let states: Vec<&str> = rows.iter().map(|r| r.state).collect();
    let fingerprints: Vec<&str> = rows.iter().map(|r| r.fingerprint.as_str()).collect();
    let currencies: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
    let gross: Vec<i64> = rows.iter().map(|r| r.gross).collect();
    let tax: Vec<i64> = rows.iter().map(|r| r.tax).collect();
    let references: Vec<Option<&str>> = rows.iter().map(|r| r.erp_reference.as_deref()).collect();
    let erp_gross: Vec<Option<i64>> = rows.iter().map(|r| r.erp_gross).collect();
    let erp_tax: Vec<Option<i64>> = rows.iter().map(|r| r.erp_tax).collect();
    sqlx::query(
        "INSERT INTO order_ledger
             (tenant, order_number, state, snapshot_hash, snapshot_fetched_at, order_fingerprint,
              currency, gross_minor, tax_minor, erp_reference, erp_gross_minor, erp_tax_minor,
              first_accepted_at, received_at, posted_at)
         SELECT $1, x.n, x.state, 'bench', now(), x.fp, x.cur, x.g, x.t, NULLIF(x.r, ''),
                x.eg, x.et, now() - interval '1 hour', now(),
                CASE WHEN x.state = 'posted' THEN now() - interval '1 hour' + interval '2 seconds' END
         FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                     $7::bigint[], $8::text[], $9::bigint[], $10::bigint[])
              AS x(n, state, fp, cur, g, t, r, eg, et)",
    )
    .bind(TENANT)
    .bind(&numbers)
    .bind(&states)
    .bind(&fingerprints)
    .bind(&currencies)
    .bind(&gross)
    .bind(&tax)
    .bind(&references)
    .bind(&erp_gross)
    .bind(&erp_tax)
    .execute(store.pool())
    .await?;
    Ok(())
}

async fn set_recorded(store: &Store, number: i64, gross: i64, tax: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE order_ledger SET erp_gross_minor = $3, erp_tax_minor = $4
         WHERE tenant = $1 AND order_number = $2",
    )
    .bind(TENANT)
    .bind(number)
    .bind(gross)
    .bind(tax)
    .execute(store.pool())
    .await?;
    Ok(())
}

async fn set_fingerprint(store: &Store, number: i64, fingerprint: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE order_ledger SET order_fingerprint = $3 WHERE tenant = $1 AND order_number = $2",
    )
    .bind(TENANT)
    .bind(number)
    .bind(fingerprint)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The reconciler's configuration: this run's database and broker, the brand on both
/// simulators with Centra's quota lifted (the simulator's is unlimited).
fn write_config(
    path: &Path,
    config: &ferry_config::Config,
    centra: &CentraSim,
    erp: &ErpSim,
    args: &ReconcileArgs,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret as _;
    let text = format!(
        r#"[nats]
url = "{nats}"
prefix = "benchrec"

[database]
url = "{database}"

[reconciler]
# Centra is listed for orders changed since the last reached Ferry, less the grace.
grace = "1s"
batch = {batch}
batches_in_flight = {in_flight}

[[tenants]]
id = "{TENANT}"

[tenants.centra]
url = "{centra}"
token = "sim-token"
webhook_secret = "unused"
requests_per_10s = 100000000
requests_per_hour = 1000000000
complexity_per_10s = 100000000000
complexity_per_hour = 1000000000000
timeout = "60s"

[tenants.erp]
kind = "http"
url = "{erp}"

[tenants.rules]
erp_item_equals_sku = false
"#,
        nats = config.nats.url,
        database = config.database.url.expose_secret(),
        batch = args.batch,
        in_flight = args.in_flight,
        centra = centra.graphql_url(),
        erp = erp.url(),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reading the three sources alone, as a sweep reads them (the same batches, the same
/// concurrency), judging and writing nothing.
async fn baseline(
    store: &Store,
    centra: &CentraSim,
    erp: &ErpSim,
    args: &ReconcileArgs,
) -> anyhow::Result<f64> {
    let client = Arc::new(ferry_centra::CentraClient::new(
        centra.graphql_url(),
        secrecy::SecretString::from("sim-token"),
        1_000_000_000,
        Duration::from_secs(60),
    ));
    let erp = Arc::new(ferry_erp_http::HttpErp::new(
        erp.url(),
        None,
        Duration::from_secs(60),
    ));
    let batch = args.batch as i64;
    let started = Instant::now();
    let pages = crate::reconcile::ledger_pages(
        store.clone(),
        TENANT.to_owned(),
        Due::everything(None),
        batch,
    );
    let mut reads = std::pin::pin!(
        pages
            .map_ok(move |page| {
                let (client, erp) = (client.clone(), erp.clone());
                async move {
                    let numbers: Vec<i64> = page.iter().map(|d| d.row.order_number).collect();
                    let refs: Vec<String> = numbers.iter().map(i64::to_string).collect();
                    let snapshots = client.order_snapshots(&numbers).await?;
                    let documents = erp.read_many(&refs, 8).await?;
                    Ok::<_, anyhow::Error>(snapshots.len() + documents.len())
                }
            })
            .try_buffered(args.in_flight.max(1))
    );
    let mut read = 0;
    while let Some(n) = reads.try_next().await? {
        read += n;
    }
    anyhow::ensure!(read > 0, "the baseline read nothing");
    Ok(started.elapsed().as_secs_f64())
}

/// Runs `ferry reconcile run --json` as its own process: wall seconds, peak resident
/// memory (VmHWM, read while it runs), and what it wrote.
async fn run_reconciler(config: &Path) -> anyhow::Result<(f64, f64, Vec<u8>)> {
    let exe = std::env::current_exe().context("this program's path")?;
    let started = Instant::now();
    let child = tokio::process::Command::new(exe)
        .args(["reconcile", "run", "--tenant", TENANT, "--json"])
        .env("FERRY_CONFIG", config)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("starting ferry reconcile run")?;
    let pid = child.id().context("the reconciler's pid")?;
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watch = {
        let peak = peak.clone();
        tokio::spawn(async move {
            let path = format!("/proc/{pid}/status");
            while let Ok(status) = tokio::fs::read_to_string(&path).await {
                if let Some(kib) = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let output = child.wait_with_output().await?;
    let seconds = started.elapsed().as_secs_f64();
    watch.abort();
    anyhow::ensure!(output.status.success(), "ferry reconcile run failed");
    let peak_mb = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
    Ok((seconds, peak_mb, output.stdout))
}

/// Planted variances reported with their cause, by cause; and variances reported that
/// were not planted (or with another cause).
fn score(
    stdout: &[u8],
    planted: &Planted,
) -> anyhow::Result<(usize, BTreeMap<&'static str, usize>, usize)> {
    let text = std::str::from_utf8(stdout)?;
    let mut lines: Vec<&str> = text.lines().collect();
    let summary = lines.pop().context("no summary line")?;
    eprintln!("reconciler: {summary}");
    let mut found = 0;
    let mut by_cause = BTreeMap::new();
    let mut false_positives = 0;
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let cause = v["cause"].as_str().unwrap_or_default();
        let want = match v["order"].as_i64() {
            Some(order) => planted.orders.get(&order),
            None => v["erp_reference"]
                .as_str()
                .and_then(|r| planted.documents.get(r)),
        };
        match want {
            Some(want) if want.as_str() == cause => {
                found += 1;
                *by_cause.entry(want.as_str()).or_default() += 1;
            }
            _ => {
                false_positives += 1;
                if false_positives <= 5 {
                    eprintln!("not planted: {line}");
                }
            }
        }
    }
    Ok((found, by_cause, false_positives))
}
