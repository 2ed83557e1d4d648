//! `ferry mapping import|list|export`: the Centra SKU → ERP item mapping of a tenant, as
//! the `centra_sku,erp_item` CSV of the contract. Importing releases the orders the missing
//! mappings blocked (the transform service notices within seconds).

use std::path::PathBuf;

use anyhow::Context as _;
use ferry_domain::rules::parse_mapping_csv;

#[derive(clap::Subcommand, Debug)]
pub enum MappingCommand {
    /// Add or change mappings from a `centra_sku,erp_item` CSV.
    Import {
        #[arg(long)]
        tenant: String,
        /// The CSV file ("-" for standard input).
        #[arg(long)]
        file: PathBuf,
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the mappings as a table.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the mappings as `centra_sku,erp_item` CSV (importable again).
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
}

async fn store(config: Option<&std::path::Path>) -> anyhow::Result<ferry_store::Store> {
    let config = crate::config::load(config)?;
    let store = ferry_store::Store::connect(&config.database)
        .await
        .context("connecting to the database")?;
    store.migrate().await?;
    Ok(store)
}

pub async fn run(command: MappingCommand) -> anyhow::Result<()> {
    match command {
        MappingCommand::Import {
            tenant,
            file,
            config,
        } => {
            anyhow::ensure!(
                ferry_config::is_token(&tenant),
                "{tenant:?} is not a tenant id"
            );
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let rows = parse_mapping_csv(&text).with_context(|| format!("{}", file.display()))?;
            let store = store(config.as_deref()).await?;
            let changed = store.upsert_sku_mappings(&tenant, &rows).await?;
            let blocked = store.blocked_orders(&tenant, 100_000).await?.len();
            println!(
                "{} mappings read, {changed} added or changed for tenant {tenant}; {blocked} blocked orders will be re-evaluated",
                rows.len()
            );
        }
        MappingCommand::List { tenant, config } => {
            let rows = store(config.as_deref())
                .await?
                .sku_mappings(&tenant)
                .await?;
            println!("{:<32} {:<24} updated", "centra sku", "erp item");
            for (sku, item, at) in &rows {
                println!("{sku:<32} {item:<24} {}", at.format("%Y-%m-%d %H:%M:%S"));
            }
            println!("{} mappings", rows.len());
        }
        MappingCommand::Export { tenant, config } => {
            let rows = store(config.as_deref())
                .await?
                .sku_mappings(&tenant)
                .await?;
            let csv = ferry_domain::rules::write_mapping_csv(
                rows.iter()
                    .map(|(sku, item, _)| (sku.as_str(), item.as_str())),
            )?;
            print!("{csv}");
        }
    }
    Ok(())
}
