//! Where exceptions go: a durable store (the exceptions table) first, then an event on the
//! EXCEPTIONS stream for whoever watches (console, alerting).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_domain::{NewException, Owner, Severity};
use ferry_proto::exception::v1 as pb;
use prost::Message as _;

use crate::nats::{Outgoing, Publisher, Topology};

#[derive(Debug, thiserror::Error)]
#[error("exception could not be recorded: {0}")]
pub struct SinkError(pub String);

/// Records an exception durably. Implementations deduplicate on (tenant, kind, key).
#[async_trait]
pub trait ExceptionSink: Send + Sync + 'static {
    async fn record(&self, exception: &NewException) -> Result<(), SinkError>;
}

/// The durable part: returns the id of the (possibly existing) exception record and how
/// many times it has now been seen.
#[async_trait]
pub trait ExceptionStore: Send + Sync + 'static {
    async fn upsert(&self, exception: &NewException) -> Result<(String, i64), SinkError>;
}

/// Stores the exception, then announces it on `<prefix>.<tenant>.exception.<kind>`.
pub struct RecordAndAnnounce {
    pub store: Arc<dyn ExceptionStore>,
    pub publisher: Publisher,
    pub topology: Topology,
}

#[async_trait]
impl ExceptionSink for RecordAndAnnounce {
    async fn record(&self, exception: &NewException) -> Result<(), SinkError> {
        let (id, count) = self.store.upsert(exception).await?;
        metrics::counter!(
            "ferry_exceptions_total",
            "tenant" => exception.tenant.clone(),
            "kind" => exception.kind.as_str(),
            "owner" => exception.owner().as_str()
        )
        .increment(1);
        let event = pb::ExceptionRaised {
            id: id.clone(),
            tenant: exception.tenant.clone(),
            kind: exception.kind.as_str().to_owned(),
            owner: owner(exception.owner()) as i32,
            severity: severity(exception.kind.severity()) as i32,
            message: exception.message.clone(),
            reason: exception.reason.clone(),
            order_number: exception.order_number,
            amount_minor: exception.amount_minor,
            currency: exception.currency.clone().unwrap_or_default(),
            service: exception.service.clone(),
            raised_at: Some(ferry_proto::timestamp(std::time::SystemTime::now())),
            source_subject: exception.source_subject.clone().unwrap_or_default(),
            payload: exception.payload.clone(),
            seen_count: count,
        };
        let outgoing = Outgoing {
            subject: self
                .topology
                .exception_subject(&exception.tenant, exception.kind.as_str()),
            msg_id: format!("exception:{id}:{count}"),
            payload: Bytes::from(event.encode_to_vec()),
        };
        // The table is the record; the event is a notification. Losing the event must
        // not put the failing message back in the queue.
        if let Err(e) = self.publisher.publish(&outgoing).await {
            tracing::warn!(error = %e, exception = %id, "exception stored but not announced");
        }
        Ok(())
    }
}

pub fn owner(o: Owner) -> pb::Owner {
    match o {
        Owner::Finance => pb::Owner::Finance,
        Owner::Operations => pb::Owner::Operations,
        Owner::CustomerService => pb::Owner::CustomerService,
        Owner::Engineering => pb::Owner::Engineering,
    }
}

pub fn severity(s: Severity) -> pb::Severity {
    match s {
        Severity::Info => pb::Severity::Info,
        Severity::Warning => pb::Severity::Warning,
        Severity::Error => pb::Severity::Error,
        Severity::Critical => pb::Severity::Critical,
    }
}
