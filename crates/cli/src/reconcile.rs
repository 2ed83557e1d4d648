//! `ferry reconcile run|report`: check a brand's orders against Centra and the ERP on
//! demand, and the month-end report of what the checks found (docs/operations/reconciliation.md).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use ferry_reconciler::check::{Checked, Checker};
use ferry_reconciler::compare::{Variance, Verdict};
use ferry_reconciler::report::{Period, Report, html, percent};
use ferry_reconciler::service::Documents;
use ferry_reconciler::stock::{STOCK_PAGE, StockCheck};
use ferry_store::Store;
use ferry_store::reconciliation::{Due, DueOrder};
use futures::TryStreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

#[derive(clap::Subcommand, Debug)]
pub enum ReconcileCommand {
    /// Check every order of a brand (or those accepted since a day) against Centra and the
    /// ERP now, and every ERP document for ones no order explains. Verdicts and exceptions
    /// are recorded as the reconciler service records them; a run stopped half-way is
    /// simply run again.
    Run(RunArgs),
    /// The month-end report of what the checks recorded for a period.
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[arg(long)]
    tenant: String,
    /// Only orders accepted on or after this day (YYYY-MM-DD); also how far back Centra's
    /// orders are listed for ones Ferry never saw (default: the brand's first order).
    #[arg(long)]
    since: Option<NaiveDate>,
    /// One JSON object per variance, then a summary line, on standard output.
    #[arg(long)]
    json: bool,
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Html,
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[arg(long)]
    tenant: String,
    /// The month, YYYY-MM.
    #[arg(long)]
    period: String,
    #[arg(long, value_enum, default_value = "html")]
    format: Format,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
}

pub async fn run(command: ReconcileCommand) -> anyhow::Result<()> {
    match command {
        ReconcileCommand::Run(args) => run_checks(args).await,
        ReconcileCommand::Report(args) => report(args).await,
    }
}

/// What a run found, as its last JSON line says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Orders judged (not pending).
    pub checked: u64,
    pub complete: u64,
    pub accurate: u64,
    /// Inside their grace, or held in Centra.
    pub pending: u64,
    /// Variances found, ERP documents no order explains included.
    pub variances: u64,
    /// Orders with a step past the brand's target.
    pub late: u64,
}

impl Tally {
    fn add(&mut self, checked: &Checked) {
        if !checked.late.is_empty() {
            self.late += 1;
        }
        match &checked.verdict {
            Verdict::Pending => self.pending += 1,
            Verdict::Reconciled => {
                self.checked += 1;
                self.complete += 1;
                self.accurate += 1;
            }
            Verdict::Variances(found) => {
                self.checked += 1;
                if !found.iter().any(|v| v.cause.is_completeness()) {
                    self.complete += 1;
                }
            }
        }
    }
}

async fn run_checks(args: RunArgs) -> anyhow::Result<()> {
    let mut config = crate::config::load(args.config.as_deref())?;
    // Warnings and the phases' timings on standard error: the run's output is stdout.
    config.telemetry.log_to_stderr = true;
    let _telemetry = ferry_runtime::telemetry::init(&config.telemetry, "ferry-reconcile")?;
    check_tenant(
        &config,
        &args.tenant,
        args.since,
        args.json,
        &mut std::io::stdout(),
    )
    .await?;
    Ok(())
}

/// `ferry reconcile run`: checks every order of `tenant` accepted since `since` (all when
/// `None`), the orders Centra lists that Ferry never saw, and every ERP document; writes
/// the variances to `out` (JSON lines and a summary line with `json`).
pub async fn check_tenant(
    config: &ferry_config::Config,
    tenant: &str,
    since: Option<NaiveDate>,
    json: bool,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<Tally> {
    let tenant = config
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .with_context(|| format!("no tenant {tenant:?} in the configuration"))?;
    let connectors = crate::connectors::build(config)?;
    let erp = connectors
        .get(&tenant.id)
        .and_then(|c| c.read_back.clone())
        .with_context(|| {
            format!(
                "tenant {}'s ERP connector ({}) cannot read documents back: its orders cannot be reconciled",
                tenant.id, tenant.erp.kind
            )
        })?;
    let store = Store::connect(&config.database)
        .await
        .context("connecting to the database")?;
    store.migrate().await?;
    // Exceptions are recorded and announced as the service does, for the console.
    let base = ferry_runtime::ServiceBase::connect(
        ferry_reconciler::SERVICE,
        Arc::new(config.runtime()),
        CancellationToken::new(),
        ferry_runtime::Readiness::default(),
    )
    .await
    .context("connecting to NATS")?;
    let sink = ferry_platform::exception_sink(&store, &base);
    let checker = Checker::for_tenant(
        tenant,
        store.clone(),
        erp.clone(),
        sink.clone(),
        &config.reconciler,
    )?;
    let since = since.map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    let due = Due::everything(since);
    let total = store.orders_in_scope(&tenant.id, since).await?;
    let bar = progress(json, total);
    let batch_size = i64::try_from(config.reconciler.batch.max(1)).unwrap_or(200);
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    let mut emit = |found: &[Variance], tally: &mut Tally| -> anyhow::Result<()> {
        for v in found {
            tally.variances += 1;
            if json {
                serde_json::to_writer(&mut *out, &VarianceLine::from(v))?;
                writeln!(out)?;
            } else {
                bar.suspend(|| {
                    writeln!(
                        out,
                        "order {:>10}  {:<24} {:<16} {:>14}  {}",
                        VarianceLine::from(v)
                            .order
                            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                        v.cause.as_str(),
                        v.owner.as_str(),
                        ferry_domain::Currency::from_code(&v.currency)
                            .map(|c| c.format(v.money_minor))
                            .unwrap_or_else(|| format!("{} {}", v.money_minor, v.currency)),
                        v.detail
                    )
                })?;
            }
        }
        Ok(())
    };
    let checker = Arc::new(checker);
    let stock = StockCheck::for_tenant(tenant, store.clone(), sink.clone(), STOCK_PAGE);
    // The ERP's documents are walked (for ones no order explains) beside the orders.
    let documents = tokio::spawn(walk_documents(Documents {
        tenant: tenant.id.clone(),
        store: store.clone(),
        erp,
        sink,
        page: DOCUMENTS_PAGE,
        live_since: tokio::sync::OnceCell::new(),
    }));
    let mut checks = std::pin::pin!(check_ledger(
        store.clone(),
        checker.clone(),
        tenant.id.clone(),
        due,
        batch_size,
        config.reconciler.batches_in_flight,
    ));
    while let Some(checked) = checks.try_next().await? {
        for c in &checked {
            tally.add(c);
            emit(c.verdict.variances(), &mut tally)?;
        }
        bar.inc(checked.len() as u64);
    }

    tracing::info!(
        tenant = %tenant.id,
        seconds = started.elapsed().as_secs_f64(),
        "the ledger's orders checked"
    );

    // Orders Ferry never saw: numbers missing from the ledger between its first and last
    // order (Centra's documentation does not promise contiguous numbers: a number Centra
    // does not know costs a lookup and is passed over), then the orders Centra lists as
    // changed since the last one reached Ferry (or since `--since`).
    bar.set_message("Centra's orders Ferry never saw");
    if let Some(live_since) = store.first_order_day(&tenant.id).await? {
        let gaps = store.ledger_gaps(&tenant.id, since, MAX_GAPS).await?;
        if gaps.len() as i64 >= MAX_GAPS {
            tracing::warn!(
                tenant = %tenant.id,
                "more than {MAX_GAPS} order numbers missing from the ledger: only the first are looked up"
            );
        }
        let last = store
            .last_order_at(&tenant.id)
            .await?
            .unwrap_or_else(Utc::now);
        let from = since.unwrap_or(last - checker.grace);
        let mut numbers = gaps;
        numbers.extend(checker.unseen_since(from).await?);
        numbers.sort_unstable();
        numbers.dedup();
        for c in checker
            .check_numbers(&numbers, live_since, Utc::now())
            .await?
        {
            tally.add(&c);
            emit(c.verdict.variances(), &mut tally)?;
        }
    }
    bar.set_message("the ERP's documents");
    emit(&documents.await??, &mut tally)?;
    if let Some(stock) = stock {
        bar.set_message("Centra's stock");
        emit(&walk_stock(&stock).await?, &mut tally)?;
    }
    bar.finish_and_clear();
    tracing::info!(
        tenant = %tenant.id,
        seconds = started.elapsed().as_secs_f64(),
        "the ERP's documents read"
    );
    // The console's day-by-day figures, as the reconciler keeps them after a pass.
    let (from, to) = ferry_reconciler::service::counted_days(Utc::now().date_naive());
    store
        .refresh_reconciliation_days(
            &tenant.id,
            from,
            to,
            &ferry_reconciler::service::completeness_causes(),
        )
        .await?;
    let summary = format!(
        "{{\"checked\":{},\"complete_pct\":{},\"accurate_pct\":{},\"variances\":{},\"pending\":{},\"late\":{}}}",
        tally.checked,
        percent(tally.complete, tally.checked),
        percent(tally.accurate, tally.checked),
        tally.variances,
        tally.pending,
        tally.late
    );
    if json {
        writeln!(out, "{summary}")?;
    } else {
        writeln!(
            out,
            "{} orders checked: {} % complete, {} % accurate; {} variances; {} pending (inside their grace or held in Centra); {} late on a step",
            tally.checked,
            percent(tally.complete, tally.checked),
            percent(tally.accurate, tally.checked),
            tally.variances,
            tally.pending,
            tally.late
        )?;
    }
    out.flush()?;
    Ok(tally)
}

/// The ledger's orders in scope, read a page after another and checked `in_flight` pages
/// at a time, each on the runtime's threads: Centra's answer to one page is judged while
/// the next is read.
fn check_ledger(
    store: Store,
    checker: Arc<Checker>,
    tenant: String,
    due: Due,
    batch_size: i64,
    in_flight: usize,
) -> impl futures::Stream<Item = anyhow::Result<Vec<Checked>>> {
    ledger_pages(store, tenant, due, batch_size)
        .map_ok(move |batch| {
            let checker = checker.clone();
            async move {
                let checked = tokio::spawn(async move { checker.check(&batch, Utc::now()).await });
                Ok::<_, anyhow::Error>(checked.await??)
            }
        })
        .try_buffered(in_flight.max(1))
}

/// The ledger's orders in scope, a page of `batch_size` after another (also what the
/// benchmark's baseline reads).
pub fn ledger_pages(
    store: Store,
    tenant: String,
    due: Due,
    batch_size: i64,
) -> impl futures::Stream<Item = anyhow::Result<Vec<DueOrder>>> {
    futures::stream::try_unfold((Some(0i64), 0u64), move |(after, pages)| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            let Some(after) = after else {
                return Ok::<_, anyhow::Error>(None);
            };
            // The first run of a brand fills `reconciliation` from nothing: the planner's
            // statistics are kept current as it grows (ADR 0019), or each page would read
            // the whole brand.
            if pages % STATISTICS_EVERY == 0 {
                store.refresh_statistics().await?;
            }
            let batch = store
                .orders_to_reconcile(&tenant, after, due, batch_size)
                .await?;
            let next = batch
                .last()
                .filter(|_| batch.len() as i64 >= batch_size)
                .map(|d| d.row.order_number);
            Ok((!batch.is_empty()).then_some((batch, (next, pages + 1))))
        }
    })
}

/// Every ERP document, a page after another: those no order explains.
async fn walk_documents(documents: Documents) -> anyhow::Result<Vec<Variance>> {
    let mut found = Vec::new();
    let mut cursor = String::new();
    loop {
        let (pass, unexplained) = documents.walk(&cursor).await?;
        found.extend(unexplained);
        if !pass.more || pass.cursor == cursor {
            documents.settle(&found).await?;
            return Ok(found);
        }
        cursor = pass.cursor;
    }
}

/// Every SKU Ferry pushes, a page after another: those whose stock in Centra drifted.
async fn walk_stock(stock: &StockCheck) -> anyhow::Result<Vec<Variance>> {
    let mut found = Vec::new();
    let mut cursor = String::new();
    loop {
        let (pass, drifting) = stock.walk(&cursor).await?;
        found.extend(drifting);
        if !pass.more {
            return Ok(found);
        }
        cursor = pass.cursor;
    }
}

/// Pages between two looks at the planner's statistics.
const STATISTICS_EVERY: u64 = 50;

/// ERP documents read per request by a run (the HTTP ERP's largest page).
const DOCUMENTS_PAGE: usize = 5_000;

/// Order numbers missing from the ledger looked up in Centra per run, at most.
const MAX_GAPS: i64 = 100_000;

/// A progress bar on a terminal (standard error), none otherwise or with `--json`.
fn progress(json: bool, total: i64) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {wide_bar} {pos}/{len} orders ({per_sec}, {eta} left) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// One line of `--json`: the documented fields, in this order.
#[derive(serde::Serialize)]
struct VarianceLine<'a> {
    order: Option<i64>,
    cause: &'static str,
    owner: &'static str,
    money_minor: i64,
    currency: &'a str,
    detail: &'a str,
    erp_reference: Option<&'a str>,
}

impl<'a> From<&'a Variance> for VarianceLine<'a> {
    fn from(v: &'a Variance) -> Self {
        VarianceLine {
            // An ERP document no order explains, or a SKU's stock, concerns no order.
            order: v.cause.concerns_order().then_some(v.order),
            cause: v.cause.as_str(),
            owner: v.owner.as_str(),
            money_minor: v.money_minor,
            currency: &v.currency,
            detail: &v.detail,
            erp_reference: v.erp_reference.as_deref(),
        }
    }
}

async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let period = Period::month(&args.period)?;
    anyhow::ensure!(
        ferry_config::is_token(&args.tenant),
        "{:?} is not a tenant id",
        args.tenant
    );
    let config = crate::config::load(args.config.as_deref())?;
    let store = Store::connect(&config.database)
        .await
        .context("connecting to the database")?;
    store.migrate().await?;
    let report = month_report(&store, &args.tenant, period).await?;
    let text = match args.format {
        Format::Html => html(&report),
        Format::Csv => report.csv()?,
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// The month-end report of `tenant` for `period` (the reconciler's, shared with the console).
pub async fn month_report(store: &Store, tenant: &str, period: Period) -> anyhow::Result<Report> {
    Ok(ferry_reconciler::report::month_report(store, tenant, period).await?)
}
