//! The connector registry: which `[erp] kind` builds which connector. Each connector crate
//! owns its configuration — the rest of its tenant's `[erp]` table, read by its own
//! `build` — and says which capabilities it offers; the binary lists the connector kinds it
//! carries (`crates/cli/src/connectors.rs`), and nothing else in Ferry names a connector.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::capability::{
    ChangeOrders, CreditNotes, Customers, Erp, PostOrders, ReadBack, ShipmentFeed, StockFeed,
};

/// A tenant's `[erp]` table: `kind` and the connector's own settings beside it.
pub type Settings = serde_json::Map<String, serde_json::Value>;

/// What every connector is built with, beside its settings.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub tenant: String,
    /// How long one request to the ERP may take (`erp_writer.request_timeout`).
    pub timeout: Duration,
}

/// A built connector: what its ERP can do.
#[derive(Clone)]
pub struct Connector {
    pub kind: &'static str,
    pub erp: Arc<dyn Erp>,
    pub orders: Option<Arc<dyn PostOrders>>,
    pub customers: Option<Arc<dyn Customers>>,
    pub shipments: Option<Arc<dyn ShipmentFeed>>,
    pub stock: Option<Arc<dyn StockFeed>>,
    pub read_back: Option<Arc<dyn ReadBack>>,
    pub changes: Option<Arc<dyn ChangeOrders>>,
    pub credits: Option<Arc<dyn CreditNotes>>,
}

impl Connector {
    /// A connector with no capability beyond naming itself and answering health checks.
    pub fn new(kind: &'static str, erp: Arc<dyn Erp>) -> Self {
        Connector {
            kind,
            erp,
            orders: None,
            customers: None,
            shipments: None,
            stock: None,
            read_back: None,
            changes: None,
            credits: None,
        }
    }

    pub fn orders(mut self, c: Arc<dyn PostOrders>) -> Self {
        self.orders = Some(c);
        self
    }

    pub fn customers(mut self, c: Arc<dyn Customers>) -> Self {
        self.customers = Some(c);
        self
    }

    pub fn shipments(mut self, c: Arc<dyn ShipmentFeed>) -> Self {
        self.shipments = Some(c);
        self
    }

    pub fn stock(mut self, c: Arc<dyn StockFeed>) -> Self {
        self.stock = Some(c);
        self
    }

    pub fn read_back(mut self, c: Arc<dyn ReadBack>) -> Self {
        self.read_back = Some(c);
        self
    }

    pub fn changes(mut self, c: Arc<dyn ChangeOrders>) -> Self {
        self.changes = Some(c);
        self
    }

    pub fn credits(mut self, c: Arc<dyn CreditNotes>) -> Self {
        self.credits = Some(c);
        self
    }

    /// Every capability of one value that has them all.
    pub fn full<T>(kind: &'static str, erp: Arc<T>) -> Self
    where
        T: PostOrders + Customers + ShipmentFeed + StockFeed + ReadBack,
    {
        Connector::new(kind, erp.clone())
            .orders(erp.clone())
            .customers(erp.clone())
            .shipments(erp.clone())
            .stock(erp.clone())
            .read_back(erp)
    }

    /// The capabilities, for messages and `ferry up`.
    pub fn capabilities(&self) -> Vec<&'static str> {
        [
            ("orders", self.orders.is_some()),
            ("customers", self.customers.is_some()),
            ("shipments", self.shipments.is_some()),
            ("stock", self.stock.is_some()),
            ("read_back", self.read_back.is_some()),
            ("changes", self.changes.is_some()),
            ("credits", self.credits.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, has)| has.then_some(name))
        .collect()
    }
}

/// Builds a connector from its settings.
pub type Build = fn(&Settings, &BuildContext) -> Result<Connector, String>;

/// One connector kind.
#[derive(Clone, Copy)]
pub struct Kind {
    /// The `[erp] kind` that names it.
    pub name: &'static str,
    pub build: Build,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("tenant {tenant}: unknown ERP connector kind {kind:?} (this build has: {known})")]
    UnknownKind {
        tenant: String,
        kind: String,
        known: String,
    },
    #[error("tenant {tenant}: the {kind} connector's settings: {reason}")]
    Settings {
        tenant: String,
        kind: String,
        reason: String,
    },
}

/// The connector kinds a binary carries.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Kind>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn with(mut self, kind: Kind) -> Self {
        self.kinds.insert(kind.name, kind);
        self
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// Builds `kind` from `settings` for `context.tenant`.
    pub fn build(
        &self,
        kind: &str,
        settings: &Settings,
        context: &BuildContext,
    ) -> Result<Connector, RegistryError> {
        let Some(found) = self.kinds.get(kind) else {
            return Err(RegistryError::UnknownKind {
                tenant: context.tenant.clone(),
                kind: kind.to_owned(),
                known: self.kinds().collect::<Vec<_>>().join(", "),
            });
        };
        (found.build)(settings, context).map_err(|reason| RegistryError::Settings {
            tenant: context.tenant.clone(),
            kind: kind.to_owned(),
            reason,
        })
    }
}

/// The connectors of every tenant of a process, built once at start-up (a tenant whose
/// settings are wrong stops the start with a clear message).
#[derive(Clone, Default)]
pub struct Connectors {
    by_tenant: BTreeMap<String, Connector>,
}

impl Connectors {
    pub fn insert(&mut self, tenant: &str, connector: Connector) {
        self.by_tenant.insert(tenant.to_owned(), connector);
    }

    pub fn get(&self, tenant: &str) -> Option<&Connector> {
        self.by_tenant.get(tenant)
    }
}

/// Reads a connector's settings into its own type (unknown fields refused where the type
/// says `deny_unknown_fields`).
pub fn settings<T: serde::de::DeserializeOwned>(settings: &Settings) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(settings.clone())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    struct Nothing;

    #[async_trait]
    impl Erp for Nothing {
        fn name(&self) -> &'static str {
            "nothing"
        }
        async fn health(&self) -> Result<(), crate::ErpError> {
            Ok(())
        }
    }

    fn build(settings: &Settings, _: &BuildContext) -> Result<Connector, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Own {
            #[allow(dead_code)]
            path: String,
        }
        self::settings::<Own>(settings)?;
        Ok(Connector::new("nothing", Arc::new(Nothing)))
    }

    #[test]
    fn a_kind_builds_from_its_own_settings_and_unknown_ones_are_named() {
        let registry = Registry::new().with(Kind {
            name: "nothing",
            build,
        });
        let context = BuildContext {
            tenant: "acme".into(),
            timeout: Duration::from_secs(1),
        };
        let mut good = Settings::new();
        good.insert("path".into(), "/tmp".into());
        let built = registry.build("nothing", &good, &context);
        assert!(built.is_ok_and(|c| c.capabilities().is_empty()));
        let mut bad = good.clone();
        bad.insert("pth".into(), "/tmp".into());
        assert!(matches!(
            registry.build("nothing", &bad, &context),
            Err(RegistryError::Settings { reason, .. }) if reason.contains("pth")
        ));
        assert_eq!(
            registry.build("sap", &good, &context).err(),
            Some(RegistryError::UnknownKind {
                tenant: "acme".into(),
                kind: "sap".into(),
                known: "nothing".into()
            })
        );
    }
}
