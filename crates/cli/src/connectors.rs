//! The ERP connectors this binary carries, and building every tenant's at start-up. A new
//! connector is its own crate under `crates/erp/connectors/`, a workspace member, and one
//! line here (`docs/connectors.md`); nothing else in Ferry names a connector.

use ferry_config::Config;
use ferry_erp::{BuildContext, Connectors, Registry, RegistryError};

pub fn registry() -> Registry {
    Registry::new()
        .with(ferry_erp_http::kind())
        .with(ferry_erp_tryton::kind())
        .with(ferry_erp_file_drop::kind())
}

/// Every tenant's connector, built from its `[erp]` table; the first tenant whose settings
/// are wrong stops the start with a message naming it.
pub fn build(config: &Config) -> Result<Connectors, RegistryError> {
    let registry = registry();
    let mut connectors = Connectors::default();
    for tenant in &config.tenants {
        let context = BuildContext {
            tenant: tenant.id.clone(),
            timeout: config.erp_writer.request_timeout,
        };
        let connector = registry.build(&tenant.erp.kind, &tenant.erp.settings, &context)?;
        connectors.insert(&tenant.id, connector);
    }
    Ok(connectors)
}
