//! `ferry tokens create|list|revoke`: the operations API's tokens, straight in the
//! database (whoever can reach it is the administrator who hands tokens out). A token's
//! secret is printed once, at creation, and stored only as its hash.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use ferry_ops::access::Role;

#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// Makes a token and prints its secret (once: keep it in a password manager).
    Create {
        /// Who holds it: a person's e-mail or a system's name (the actor in the audit).
        #[arg(long)]
        name: String,
        /// finance, operations, customer-service, engineering or admin.
        #[arg(long)]
        role: String,
        /// A tenant it may see (repeat for several).
        #[arg(long = "tenant", required_unless_present = "all_tenants")]
        tenants: Vec<String>,
        /// Every tenant, now and later.
        #[arg(long, conflicts_with = "tenants")]
        all_tenants: bool,
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Lists the tokens (never their secrets).
    List {
        #[arg(long, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revokes a token by id: calls with it are refused at once.
    Revoke {
        id: uuid::Uuid,
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

/// A new token for `name`: its id and its secret.
pub async fn create(
    store: &ferry_store::Store,
    name: &str,
    role: Role,
    tenants: &[String],
) -> anyhow::Result<(uuid::Uuid, String)> {
    anyhow::ensure!(!name.trim().is_empty(), "a token needs a name");
    anyhow::ensure!(
        name.trim() != "ferry",
        "`ferry` is the name Ferry's own actions carry in the audit; choose another"
    );
    for t in tenants {
        anyhow::ensure!(
            t == "*" || ferry_config::is_token(t),
            "{t:?} is not a tenant id"
        );
    }
    let secret = ferry_ops::tokens::new_secret();
    let id = store
        .create_token(
            name.trim(),
            role.as_str(),
            tenants,
            &ferry_ops::tokens::hash(&secret),
        )
        .await?;
    Ok((id, secret))
}

pub async fn run(command: TokensCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match command {
        TokensCommand::Create {
            name,
            role,
            tenants,
            all_tenants,
            config,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!(
                    "{role:?} is not a role: finance, operations, customer-service, engineering or admin"
                )
            })?;
            let tenants = if all_tenants {
                vec!["*".to_owned()]
            } else {
                tenants
            };
            let store = store(config.as_deref()).await?;
            let (id, secret) = create(&store, &name, role, &tenants).await?;
            writeln!(
                out,
                "token {id} for {name} ({role}, tenants {})",
                tenants.join(", ")
            )?;
            writeln!(out, "secret (shown once): {secret}")?;
        }
        TokensCommand::List { config } => {
            let store = store(config.as_deref()).await?;
            writeln!(
                out,
                "{:<36}  {:<28}  {:<16}  {:<20}  state",
                "id", "name", "role", "tenants"
            )?;
            for t in store.list_tokens().await? {
                writeln!(
                    out,
                    "{:<36}  {:<28}  {:<16}  {:<20}  {}",
                    t.id,
                    t.name,
                    t.role,
                    t.tenants.join(","),
                    t.revoked_at
                        .map(|at| format!("revoked {}", at.format("%Y-%m-%d %H:%M")))
                        .unwrap_or_else(|| "live".into())
                )?;
            }
        }
        TokensCommand::Revoke { id, config } => {
            let store = store(config.as_deref()).await?;
            if store.revoke_token(id).await? {
                writeln!(out, "token {id} revoked")?;
            } else {
                writeln!(out, "token {id} was not live (unknown or already revoked)")?;
            }
        }
    }
    Ok(())
}
