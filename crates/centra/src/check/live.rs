//! The first contact with a brand's Centra, read-only (`ferry centra check`): its schema
//! read by introspection with every operation Ferry sends validated against it, the
//! permissions the token lacks (found by running Ferry's read operations; write permissions
//! cannot be proven without writing, and are listed as such), the quotas `rateLimits`
//! reports, and one recent order fetched with the snapshot query and transformed as a dry
//! run. Nothing is written to Centra.

use std::collections::{BTreeMap, HashMap};

use ferry_domain::{Rules, Snapshot, Summary, transform};

use super::{CheckedSchema, Difference, introspection};
use crate::client::{CentraClient, CentraError, RateLimitBucket};

/// What the check needs beyond the client.
#[derive(Debug, Clone)]
pub struct Options {
    /// The tenant's rules for the dry run (item mapping, tax codes, release policy).
    pub rules: Rules,
    /// `centra_sku → erp_item`, for the dry run.
    pub items: HashMap<String, String>,
    /// The order to fetch; else the newest changed within `look_back`.
    pub order: Option<i64>,
    pub look_back: chrono::Duration,
    /// The warehouse whose stock is read.
    pub warehouse: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rules: Rules::default(),
            items: HashMap::new(),
            order: None,
            look_back: chrono::Duration::days(7),
            warehouse: 1,
        }
    }
}

/// A permission the token lacks, and the operation that needed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPermission {
    pub permission: String,
    pub operation: &'static str,
}

/// The recent order and what Ferry would post for it.
#[derive(Debug, Clone)]
pub struct OrderCheck {
    pub number: i64,
    /// The contract summary JSON, or why the order could not be fetched or read.
    pub summary: Result<String, String>,
    /// `ready`, `held`, `cancelled` or `rejected`.
    pub status: Option<String>,
}

/// Everything the check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Types in the live schema, or why it could not be read.
    pub schema_types: Option<Result<usize, String>>,
    pub differences: Vec<Difference>,
    pub missing_permissions: Vec<MissingPermission>,
    pub quotas: Option<Result<Vec<RateLimitBucket>, String>>,
    pub order: Option<OrderCheck>,
    /// Failures that are neither a difference nor a permission (network, 5xx).
    pub errors: Vec<String>,
}

/// The write permissions Ferry needs, which a read-only check cannot prove: (permission,
/// what needs it).
pub const UNVERIFIABLE: &[(&str, &str)] = &[
    (
        "Shipment:write",
        "createShipment, completeShipment, captureShipment",
    ),
    ("StockChange:write", "setStock"),
    ("Event:write", "setEventListeners, confirmEvents"),
];

impl Report {
    /// Whether Ferry can go live as far as this check can tell.
    pub fn passed(&self) -> bool {
        matches!(self.schema_types, Some(Ok(_)))
            && self.differences.is_empty()
            && self.missing_permissions.is_empty()
            && self.errors.is_empty()
            && matches!(self.quotas, Some(Ok(_)))
            && self.order.as_ref().is_none_or(|o| o.summary.is_ok())
    }

    fn failed(&mut self, operation: &'static str, error: CentraError) {
        match error {
            CentraError::GraphQl {
                messages,
                authorization: true,
            } => {
                for permission in permissions_named(&messages) {
                    let missing = MissingPermission {
                        permission,
                        operation,
                    };
                    if !self.missing_permissions.contains(&missing) {
                        self.missing_permissions.push(missing);
                    }
                }
            }
            other => self.errors.push(format!("{operation}: {other}")),
        }
    }
}

/// The permissions Centra's authorization errors name: "You need Order:read permission to
/// access orderConnection."
pub fn permissions_named(messages: &str) -> Vec<String> {
    messages
        .split("You need ")
        .skip(1)
        .filter_map(|rest| rest.split_once(" permission"))
        .map(|(permission, _)| permission.trim().to_owned())
        .collect()
}

/// Runs the check; never writes to Centra.
pub async fn check(client: &CentraClient, options: &Options) -> Report {
    let mut report = Report::default();
    match client
        .execute(introspection::QUERY, serde_json::json!({}))
        .await
    {
        Ok(data) => match introspection::sdl(&data)
            .and_then(|sdl| CheckedSchema::parse(&sdl, "live-schema.graphql").map(|s| (s, sdl)))
        {
            Ok((schema, sdl)) => {
                report.schema_types = Some(Ok(sdl.matches("\n\n").count()));
                report.differences = schema.check_ferry();
            }
            Err(e) => report.schema_types = Some(Err(e.to_string())),
        },
        Err(e) => report.schema_types = Some(Err(e.to_string())),
    }
    report.quotas = Some(client.rate_limits().await.map_err(|e| e.to_string()));

    let number = match options.order {
        Some(n) => Some(n),
        None => {
            match client
                .orders_changed_since(chrono::Utc::now() - options.look_back)
                .await
            {
                Ok(numbers) => numbers.into_iter().max(),
                Err(e) => {
                    report.failed("orders-changed-since", e);
                    None
                }
            }
        }
    };
    let mut probe_order = None;
    if let Some(number) = number {
        let check = match client.order_snapshots(&[number]).await {
            Ok(found) => match found.into_iter().next() {
                Some(raw) => dry_run(number, &raw.json, options, &mut probe_order),
                None => OrderCheck {
                    number,
                    summary: Err(format!("Centra does not return order {number}")),
                    status: None,
                },
            },
            Err(e) => {
                let why = e.to_string();
                report.failed("order-snapshot", e);
                OrderCheck {
                    number,
                    summary: Err(why),
                    status: None,
                }
            }
        };
        report.order = Some(check);
    }

    // The other read operations, on the order found (or on nothing, which is as telling for
    // permissions).
    let (order_id, sku) = probe_order.unwrap_or_default();
    if let Err(e) = client.order_events(1).await {
        report.failed("events", e);
    }
    if let Err(e) = client.order_shipments(&order_id).await {
        report.failed("order-shipments", e);
    }
    let skus: Vec<&str> = sku.iter().map(String::as_str).collect();
    let skus = if skus.is_empty() { vec!["-"] } else { skus };
    if let Err(e) = client.stock_levels(options.warehouse, &skus).await {
        report.failed("stock-levels", e);
    }
    report
}

/// Transforms the fetched order with the tenant's rules; remembers its hash id and a SKU
/// for the other probes.
fn dry_run(
    number: i64,
    json: &[u8],
    options: &Options,
    probe: &mut Option<(String, Option<String>)>,
) -> OrderCheck {
    match Snapshot::parse(json) {
        Ok(snapshot) => {
            *probe = Some((
                snapshot.id.clone().unwrap_or_default(),
                snapshot
                    .lines
                    .iter()
                    .find_map(|l| l.sku().map(str::to_owned)),
            ));
            let order = transform(&snapshot, &options.rules, &options.items);
            let summary = Summary::of(&order);
            OrderCheck {
                number,
                status: Some(order.release.as_str().to_owned()),
                summary: Ok(summary.to_pretty_json()),
            }
        }
        Err(e) => OrderCheck {
            number,
            summary: Err(format!("Ferry cannot read order {number}: {e}")),
            status: None,
        },
    }
}

/// The quotas as `type/interval → (quota, used)`, for printing.
pub fn quota_table(buckets: &[RateLimitBucket]) -> BTreeMap<String, (u64, u64)> {
    buckets
        .iter()
        .map(|b| {
            (
                format!("{} {}", b.kind, b.interval_seconds),
                (b.quota, b.used_quota),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_read_from_centras_words() {
        assert_eq!(
            permissions_named(
                "You need Order:read permission to access orderConnection.; You need \
                 Order.shippingAddress:read permission to access shippingAddress."
            ),
            vec!["Order:read", "Order.shippingAddress:read"]
        );
        assert!(permissions_named("Something else").is_empty());
    }
}
