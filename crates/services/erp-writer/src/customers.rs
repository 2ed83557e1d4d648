//! Customers (ADR 0038): the writer's fourth consumer, on `centra.customer`, keeps the
//! ERP's customer in step with the Centra account after the first order made it — a new
//! name, e-mail or address through the connector's [`Customers::sync_customer`] — and
//! carries out an erasure request through [`Customers::erase_customer`]. One message at a
//! time per tenant, so an account's later state is never overwritten by an earlier one.
//! What the ERP refuses, and an erasure its connector cannot do, is customer service's.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_config::TenantConfig;
use ferry_domain::{ExceptionKind, NewException};
use ferry_erp::{Customer, Customers, Erasure};
use ferry_proto::centra::v1 as pb;
use ferry_runtime::consumer::{Delivery, Handler, HandlerError};
use ferry_runtime::{ExceptionSink, ServiceBase, StreamKind};
use prost::Message as _;

use crate::SERVICE;

/// The tenant's customer consumer: one message at a time, in the order ingest read them.
pub fn runner(
    base: &ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    tenant: &str,
) -> ferry_runtime::consumer::Runner {
    one_at_a_time(
        base,
        sink,
        tenant,
        StreamKind::Centra,
        base.topology.customers_filter(tenant),
        "customers",
    )
    .build()
}

pub struct CustomerHandler {
    pub tenant: TenantConfig,
    /// `None`: the tenant's connector has no customers at all.
    pub erp: Option<Arc<dyn Customers>>,
    pub sink: Arc<dyn ExceptionSink>,
    /// The tenant's ERP requests in flight (shared with the writer's other consumers).
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

/// The account as the connector takes it.
fn customer(s: &pb::CustomerSnapshot) -> Customer {
    let a = s.address.clone().unwrap_or_default();
    Customer {
        email: s.email.clone(),
        first_name: s.first_name.clone(),
        last_name: s.last_name.clone(),
        company_name: a.company_name,
        vat_number: a.vat_number,
        address1: a.address1,
        address2: a.address2,
        city: a.city,
        zip_code: a.zip_code,
        state_or_province: a.state_or_province,
        country_code: a.country_code,
        phone_number: a.phone_number,
        erp_customer: None,
        centra_customer_id: Some(s.centra_customer_id),
    }
}

#[async_trait]
impl Handler for CustomerHandler {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let snapshot = pb::CustomerSnapshot::decode(delivery.payload.as_ref())
            .map_err(|e| delivery.poison("customer", &e))?;
        let tenant = self.tenant.id.as_str();
        let id = snapshot.centra_customer_id;
        let count = |outcome: &'static str| {
            metrics::counter!("ferry_customers_total", "tenant" => tenant.to_owned(), "outcome" => outcome)
                .increment(1);
        };
        let failed = |e: ferry_erp::ErpError| HandlerError::Transient {
            reason: format!("customer {id}: {e}"),
            retry_after: e.retry_after(),
        };
        if snapshot.erased {
            let outcome = match &self.erp {
                Some(erp) => match self.slot(erp.erase_customer(id)).await? {
                    Ok(outcome) => outcome,
                    Err(e) if e.is_transient() => return Err(failed(e)),
                    Err(e) => {
                        return self
                            .tell(&snapshot, &format!("the ERP refused the erasure: {e}"))
                            .await;
                    }
                },
                None => Erasure::Unsupported,
            };
            return match outcome {
                Erasure::Done(what) => {
                    tracing::info!(tenant, customer = id, %what, "customer erased in the ERP");
                    count("erased");
                    Ok(())
                }
                Erasure::NotFound => {
                    count("erased_none");
                    Ok(())
                }
                Erasure::Unsupported => {
                    self.tell(
                        &snapshot,
                        "this brand's ERP connector cannot erase customers",
                    )
                    .await
                }
            };
        }
        let Some(erp) = &self.erp else {
            count("unsupported");
            return Ok(());
        };
        match self.slot(erp.sync_customer(&customer(&snapshot))).await? {
            Ok(Some(_)) => {
                count("synced");
                Ok(())
            }
            // The connector's customers change only with orders (documented per connector).
            Ok(None) => {
                count("unsupported");
                Ok(())
            }
            Err(e) if e.is_transient() => Err(failed(e)),
            Err(e) => {
                self.tell(&snapshot, &format!("the ERP refused the change: {e}"))
                    .await
            }
        }
    }
}

impl CustomerHandler {
    /// `call` within the tenant's bound on ERP requests in flight.
    async fn slot<T>(&self, call: impl std::future::Future<Output = T>) -> Result<T, HandlerError> {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(HandlerError::transient)?;
        Ok(call.await)
    }

    /// Tells customer service the ERP's customer is not as Centra's account (no personal
    /// data in the record: the Centra id says who).
    async fn tell(&self, snapshot: &pb::CustomerSnapshot, why: &str) -> Result<(), HandlerError> {
        let id = snapshot.centra_customer_id;
        let (what, todo) = if snapshot.erased {
            (
                "asked to be erased",
                "remove or anonymise the customer's personal data in the ERP by hand \
                 (keep what the books must keep)",
            )
        } else {
            (
                "changed their details",
                "update the customer in the ERP by hand",
            )
        };
        metrics::counter!("ferry_customers_total", "tenant" => self.tenant.id.clone(), "outcome" => "not_synced")
            .increment(1);
        self.sink
            .record(&NewException {
                tenant: self.tenant.id.clone(),
                kind: ExceptionKind::CustomerNotSynced,
                key: format!("customer:{id}"),
                message: format!(
                    "Centra customer {id} {what}, and Ferry could not carry it to the ERP: \
                     {why}. Please {todo}."
                ),
                reason: why.to_owned(),
                order_number: None,
                amount_minor: None,
                currency: None,
                service: SERVICE.to_owned(),
                source_subject: None,
                // The account itself stays out of the record: an erased customer's data
                // must not live on in an exception.
                payload: Vec::new(),
            })
            .await
            .map_err(HandlerError::transient)
    }
}

/// A consumer `<writer>-<tenant>-<name>` that takes one message at a time across every
/// replica: what must reach the ERP in the order it happened.
fn one_at_a_time(
    base: &ServiceBase,
    sink: Arc<dyn ExceptionSink>,
    tenant: &str,
    stream: StreamKind,
    filter: String,
    name: &str,
) -> ferry_runtime::consumer::RunnerBuilder {
    let mut consumer = base.config.consumer.clone();
    consumer.concurrency = 1;
    consumer.max_ack_pending = 1;
    ferry_runtime::consumer::Runner::builder(base, sink, SERVICE, tenant, stream, filter)
        .durable(format!(
            "{}-{name}",
            base.topology.consumer_name(SERVICE, tenant)
        ))
        .config(consumer)
}
