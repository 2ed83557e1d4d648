//! `ferry transform --order SNAPSHOT.json [--sku-map MAP.csv] [--config TENANT.toml]
//! --format summary`: what Ferry would post to the ERP for one order, by the same code the
//! transform service runs. A readable snapshot always exits 0, whatever its status;
//! unreadable input exits 2 with one line on stderr.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;
use ferry_domain::rules::parse_mapping_csv;
use ferry_domain::{Rules, Snapshot, Summary, transform};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// The contract's summary JSON.
    Summary,
}

#[derive(clap::Args, Debug)]
pub struct TransformArgs {
    /// The order snapshot (one object of `data.orders`, or a whole answer with one order).
    #[arg(long)]
    pub order: PathBuf,
    /// `centra_sku,erp_item` CSV.
    #[arg(long)]
    pub sku_map: Option<PathBuf>,
    /// The tenant's configuration file (its `[rules]`), or a file of rules alone.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Summary)]
    pub format: Format,
}

fn fail(message: String) -> ExitCode {
    eprintln!("ferry transform: {message}");
    ExitCode::from(2)
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

/// Reads tenant rules from a tenant file (`[rules]` table) or a plain rules file.
pub fn load_rules(path: &Path) -> Result<Rules, String> {
    let bytes = read(path, "configuration")?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let value: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("{} is not valid TOML: {}", path.display(), e.message()))?;
    let rules = match value.get("rules") {
        Some(rules) => rules.clone(),
        None => toml::Value::Table(value),
    };
    rules
        .try_into()
        .map_err(|e: toml::de::Error| format!("{}: invalid rules: {}", path.display(), e.message()))
}

pub fn run(args: &TransformArgs) -> ExitCode {
    let bytes = match read(&args.order, "order snapshot") {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let snapshot = match Snapshot::parse(&bytes) {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "{} is not an order snapshot ({e})",
                args.order.display()
            ));
        }
    };
    let rules = match &args.config {
        Some(path) => match load_rules(path) {
            Ok(r) => r,
            Err(e) => return fail(e),
        },
        None => Rules::default(),
    };
    let items: HashMap<String, String> = match &args.sku_map {
        Some(path) => {
            let text = match read(path, "SKU map").and_then(|b| {
                String::from_utf8(b).map_err(|_| format!("{} is not UTF-8 text", path.display()))
            }) {
                Ok(t) => t,
                Err(e) => return fail(e),
            };
            match parse_mapping_csv(&text) {
                Ok(rows) => rows.into_iter().collect(),
                Err(e) => return fail(format!("{}: {e}", path.display())),
            }
        }
        None => HashMap::new(),
    };
    let order = transform(&snapshot, &rules, &items);
    match args.format {
        Format::Summary => print!("{}", Summary::of(&order).to_pretty_json()),
    }
    ExitCode::SUCCESS
}
