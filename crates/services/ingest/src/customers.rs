//! Customers: the notices naming Centra customer accounts (webhook type `customer`, Events
//! `Customer` UPDATED/DELETED) become customer snapshots — the account as it is now, or its
//! erasure when a deletion was announced and Centra no longer has it. A customer's first
//! order creates the ERP's customer; a creation notice is left to it (an account with no
//! order is nothing the ERP needs yet). Acknowledged once every customer the message named
//! is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_centra::{CentraClient, CentraCustomer};
use ferry_domain::content_hash;
use ferry_proto::centra::v1 as pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError};
use ferry_runtime::{Outgoing, ServiceBase};
use prost::Message as _;

/// Deliveries before a changed customer Centra does not return is given up on (Centra may
/// lag behind its own webhooks); only an announced deletion is taken as an erasure.
const NOT_FOUND_ATTEMPTS: i64 = 4;

pub struct CustomerHandler {
    pub base: ServiceBase,
    pub tenant: String,
    pub client: CentraClient,
}

#[async_trait]
impl Handler for CustomerHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let notices = pb::ChangeNotices::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("change notices", &e))?;
        // id → whether a notice said it was deleted.
        let mut named: BTreeMap<i64, bool> = BTreeMap::new();
        for n in notices
            .notices
            .iter()
            .filter(|n| n.object_type == "customer")
        {
            if matches!(n.action.as_str(), "create" | "insert") {
                continue;
            }
            *named.entry(n.object_id).or_default() |= n.action == "delete";
        }
        if named.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = named.keys().copied().collect();
        let found = self
            .client
            .customers(&ids)
            .await
            .map_err(|e| HandlerError::Transient {
                retry_after: e.retry_after(),
                reason: e.to_string(),
            })?;
        let present: BTreeSet<i64> = found.iter().map(|c| c.id).collect();
        let missing_changed = named
            .iter()
            .any(|(id, deleted)| !deleted && !present.contains(id));
        if missing_changed && delivery.delivered < NOT_FOUND_ATTEMPTS {
            return Err(HandlerError::Transient {
                reason: "Centra does not return every changed customer yet".into(),
                retry_after: Some(Duration::from_secs(2)),
            });
        }
        let tenant = self.tenant.as_str();
        let fetched_at = ferry_proto::timestamp(SystemTime::now());
        let mut messages: Vec<pb::CustomerSnapshot> = found
            .iter()
            .map(|c| snapshot(tenant, c, fetched_at))
            .collect();
        // Only a deletion Centra announced is an erasure: an account that is merely not
        // returned (a token without access to its store, say) must never erase a customer.
        for (id, deleted) in &named {
            if present.contains(id) {
                continue;
            }
            if *deleted {
                messages.push(erased(tenant, *id, fetched_at));
            } else {
                tracing::warn!(
                    tenant,
                    customer = id,
                    "a changed customer Centra does not return; nothing sent to the ERP"
                );
            }
        }
        for message in messages {
            let outgoing = Outgoing {
                subject: self
                    .base
                    .topology
                    .customer_subject(tenant, message.centra_customer_id),
                msg_id: format!(
                    "{tenant}:customer:{}:{}",
                    message.centra_customer_id, message.content_hash
                ),
                payload: Bytes::from(message.encode_to_vec()),
            };
            self.base.publisher.publish(&outgoing).await?;
        }
        metrics::counter!("ferry_centra_customers_total", "tenant" => tenant.to_owned())
            .increment(ids.len() as u64);
        Ok(())
    }
}

fn text(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn snapshot(
    tenant: &str,
    c: &CentraCustomer,
    fetched_at: prost_types::Timestamp,
) -> pb::CustomerSnapshot {
    let a = c.billing_address.clone().unwrap_or_default();
    let address = pb::CustomerAddress {
        company_name: text(&a.company_name),
        address1: text(&a.address1),
        address2: text(&a.address2),
        city: text(&a.city),
        zip_code: text(&a.zip_code),
        state_or_province: text(&a.state_or_province),
        country_code: a.country.and_then(|c| c.code).unwrap_or_default(),
        phone_number: text(&a.phone_number),
        vat_number: text(&a.vat_number),
    };
    let mut message = pb::CustomerSnapshot {
        tenant: tenant.to_owned(),
        centra_customer_id: c.id,
        erased: false,
        email: text(&c.email),
        first_name: text(&c.first_name),
        last_name: text(&c.last_name),
        address: Some(address),
        content_hash: String::new(),
        fetched_at: Some(fetched_at),
    };
    // The hash covers the account, not when it was read: the same account twice is one
    // message.
    let identity = pb::CustomerSnapshot {
        fetched_at: None,
        ..message.clone()
    };
    message.content_hash = content_hash(&identity.encode_to_vec());
    message
}

fn erased(tenant: &str, id: i64, fetched_at: prost_types::Timestamp) -> pb::CustomerSnapshot {
    pb::CustomerSnapshot {
        tenant: tenant.to_owned(),
        centra_customer_id: id,
        erased: true,
        content_hash: "erased".to_owned(),
        fetched_at: Some(fetched_at),
        ..pb::CustomerSnapshot::default()
    }
}
