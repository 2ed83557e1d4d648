//! Integration API tokens as the simulator knows them: each carries its permissions and
//! the integration name that owns an Events queue. A resolver asks for a permission with
//! [`need`]; a missing one is Centra's authorization error, and every one asked for is
//! reported in `extensions.permissionsUsed`.

use std::collections::BTreeSet;

use async_graphql::{Context, ErrorExtensions};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub token: String,
    /// `None`: every permission (a convenience for tests and demos).
    pub permissions: Option<Vec<String>>,
    /// Tokens of one integration share one Events queue.
    pub integration: String,
}

impl ApiToken {
    /// A token with every permission.
    pub fn all(token: &str, integration: &str) -> Self {
        ApiToken {
            token: token.to_owned(),
            permissions: None,
            integration: integration.to_owned(),
        }
    }

    /// What Ferry needs from a real Centra (`docs/centra.md` lists the same).
    pub fn ferry(token: &str) -> Self {
        ApiToken {
            token: token.to_owned(),
            permissions: Some(FERRY_PERMISSIONS.iter().map(|p| (*p).to_owned()).collect()),
            integration: "ferry".to_owned(),
        }
    }
}

/// The permissions Ferry's operations use.
pub const FERRY_PERMISSIONS: &[&str] = &[
    "Order:read",
    "Order:write",
    "Order.shippingAddress:read",
    "Order.billingAddress:read",
    "Purchaser:read",
    "Shipment:read",
    "Shipment:write",
    "Return:read",
    "Return:write",
    "Customer:read",
    "ProductSize:read",
    "ProductSize.stock:read",
    "StockChange:write",
    "Warehouse:read",
    "Event:read",
    "Event:write",
];

/// The caller of one request.
#[derive(Debug)]
pub struct Caller {
    pub token: ApiToken,
    used: Mutex<BTreeSet<String>>,
}

impl Caller {
    pub fn new(token: ApiToken) -> Self {
        Caller {
            token,
            used: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn has(&self, permission: &str) -> bool {
        self.token
            .permissions
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == permission))
    }

    /// Records the permission as used; `false` when the token lacks it.
    pub fn check(&self, permission: &str) -> bool {
        self.used.lock().insert(permission.to_owned());
        self.has(permission)
    }

    pub fn used(&self) -> Vec<String> {
        self.used.lock().iter().cloned().collect()
    }
}

/// Centra's error for a missing permission: `errors[].extensions.category = "authorization"`.
pub fn denied(permission: &str, field: &str) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "You need {permission} permission to access {field}."
    ))
    .extend_with(|_, e| e.set("category", "authorization"))
}

/// Asks for a permission on behalf of `field`.
pub fn need(ctx: &Context<'_>, permission: &str, field: &str) -> async_graphql::Result<()> {
    match ctx.data_opt::<std::sync::Arc<Caller>>() {
        Some(caller) if caller.check(permission) => Ok(()),
        // No caller only in schema-level tests that bypass HTTP: everything allowed.
        None => Ok(()),
        Some(_) => Err(denied(permission, field)),
    }
}

/// The integration whose Events queue the caller uses.
pub fn integration(ctx: &Context<'_>) -> String {
    ctx.data_opt::<std::sync::Arc<Caller>>()
        .map(|c| c.token.integration.clone())
        .unwrap_or_else(|| "default".to_owned())
}
