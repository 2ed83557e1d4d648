//! `ferry centra check --url URL --token TOKEN`: the first contact with a brand's Centra,
//! read-only — its schema read by introspection with every operation Ferry sends validated
//! against it, the permissions the token lacks, the quotas `rateLimits` reports, and one
//! recent order fetched and transformed as a dry run. Exits non-zero when anything would
//! stop Ferry from working. The going-live checklist in `docs/centra.md` is built on it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use ferry_centra::CentraClient;
use ferry_centra::check::live::{self, Report};
use secrecy::SecretString;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The Integration API endpoint, e.g. `https://brand.centra.com/graphql`.
    #[arg(long)]
    pub url: String,
    /// The Integration API token (better from the environment than the command line).
    #[arg(long, env = "FERRY_CENTRA_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The tenant's file (its `[rules]`) for the dry run.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `centra_sku,erp_item` CSV for the dry run.
    #[arg(long)]
    pub sku_map: Option<PathBuf>,
    /// The order to fetch (else the newest changed in the last `--days`).
    #[arg(long)]
    pub order: Option<i64>,
    #[arg(long, default_value_t = 7)]
    pub days: i64,
    /// The warehouse whose stock is read.
    #[arg(long, default_value_t = 1)]
    pub warehouse: i64,
    /// Requests per 10 s the check may use (it sends about ten).
    #[arg(long, default_value_t = 5)]
    pub requests_per_10s: u32,
    /// One JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let rules = match &args.config {
        Some(path) => crate::transform_cmd::load_rules(path).map_err(anyhow::Error::msg)?,
        None => ferry_domain::Rules::default(),
    };
    let items = match &args.sku_map {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ferry_domain::rules::parse_mapping_csv(&text)
                .map_err(anyhow::Error::msg)?
                .into_iter()
                .collect()
        }
        None => Default::default(),
    };
    let client = CentraClient::new(
        args.url.clone(),
        SecretString::from(args.token.clone()),
        args.requests_per_10s,
        Duration::from_secs(30),
    );
    let options = live::Options {
        rules,
        items,
        order: args.order,
        look_back: chrono::Duration::days(args.days),
        warehouse: args.warehouse,
    };
    let report = live::check(&client, &options).await;
    if args.json {
        println!("{}", json(&args.url, &report));
    } else {
        print!("{}", text(&args.url, &report));
    }
    if report.passed() {
        Ok(())
    } else {
        anyhow::bail!("the check found problems (above); Ferry is not ready for this Centra")
    }
}

fn text(url: &str, r: &Report) -> String {
    let mut out = format!("Centra check of {url}\n\n1. Schema\n");
    match &r.schema_types {
        Some(Ok(n)) if r.differences.is_empty() => out.push_str(&format!(
            "   introspected {n} types; all {} operations Ferry sends are valid\n",
            ferry_centra::client::ops::all().len()
        )),
        Some(Ok(n)) => {
            out.push_str(&format!(
                "   introspected {n} types; {} differences (Centra refuses such a request whole):\n",
                r.differences.len()
            ));
            for d in &r.differences {
                out.push_str(&format!("   - {d}\n"));
            }
        }
        Some(Err(e)) => out.push_str(&format!("   could not read the schema: {e}\n")),
        None => {}
    }
    out.push_str("\n2. Permissions\n");
    if r.missing_permissions.is_empty() {
        out.push_str("   every read permission Ferry needs is granted\n");
    }
    for m in &r.missing_permissions {
        out.push_str(&format!(
            "   - missing {} (needed by {})\n",
            m.permission, m.operation
        ));
    }
    out.push_str("   not provable without writing (check them in AMS → System → API Tokens):\n");
    for (permission, what) in live::UNVERIFIABLE {
        out.push_str(&format!("   - {permission}: {what}\n"));
    }
    out.push_str("\n3. Quotas (rateLimits)\n");
    match &r.quotas {
        Some(Ok(buckets)) => {
            for (bucket, (quota, used)) in live::quota_table(buckets) {
                out.push_str(&format!("   {bucket:<30} {quota:>12} ({used} used)\n"));
            }
            out.push_str(
                "   set the tenant's [centra] plan / *_per_* and share_percent to match\n",
            );
        }
        Some(Err(e)) => out.push_str(&format!("   could not read them: {e}\n")),
        None => {}
    }
    out.push_str("\n4. One order, transformed as a dry run (nothing is posted)\n");
    match &r.order {
        None => out.push_str("   no order changed in the period: pass --order N\n"),
        Some(o) => match &o.summary {
            Ok(summary) => out.push_str(&format!(
                "   order {}: {}\n{}\n",
                o.number,
                o.status.as_deref().unwrap_or("?"),
                indent(summary)
            )),
            Err(e) => out.push_str(&format!("   order {}: {e}\n", o.number)),
        },
    }
    for e in &r.errors {
        out.push_str(&format!("\nerror: {e}\n"));
    }
    out.push_str(&format!(
        "\nResult: {}\n",
        if r.passed() { "ready" } else { "NOT ready" }
    ));
    out
}

fn e_ref(s: &Option<Result<usize, String>>) -> Option<&String> {
    s.as_ref().and_then(|s| s.as_ref().err())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn json(url: &str, r: &Report) -> serde_json::Value {
    serde_json::json!({
        "url": url,
        "passed": r.passed(),
        "schema_types": r.schema_types.as_ref().and_then(|s| s.as_ref().ok()),
        "schema_error": e_ref(&r.schema_types),
        "differences": r.differences.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "missing_permissions": r.missing_permissions.iter()
            .map(|m| serde_json::json!({"permission": m.permission, "operation": m.operation}))
            .collect::<Vec<_>>(),
        "unverifiable_permissions": live::UNVERIFIABLE.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        "quotas": r.quotas.as_ref().and_then(|q| q.as_ref().ok()).map(|b| live::quota_table(b)),
        "order": r.order.as_ref().map(|o| serde_json::json!({
            "number": o.number,
            "status": o.status,
            "summary": o.summary.as_ref().ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()),
            "error": o.summary.as_ref().err(),
        })),
        "errors": r.errors,
    })
}
