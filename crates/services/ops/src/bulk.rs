//! Bulk actions over a filter (retry, resolve, ignore) as operations people follow: the
//! operation is recorded before anything is done, runs in the service a page at a time
//! (each exception checked against the creator's role, as one call would be), records its
//! progress and first failures after every page, stops when asked, and is resumed by the
//! upkeep if its runner stopped.

use ferry_domain::ExceptionKind;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::operation_service_server::OperationService;
use ferry_runtime::Outgoing;
use ferry_store::bulk::{BulkRow, NewBulk};
use ferry_store::ops::{ExceptionAction, ExceptionQuery, OpsException};
use futures::StreamExt as _;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::access::{Action, Principal, Role};
use crate::convert::{exception_name, parse_parent, timestamp};
use crate::filter;
use crate::server::{OpsApi, internal, nothing_to_redrive};

/// Exceptions handled between two progress records.
const PAGE: i64 = 100;
/// Exceptions acted on at once within a page.
const IN_FLIGHT: usize = 16;

/// The actions a bulk operation can take.
const ACTIONS: [&str; 3] = ["retry", "resolve", "ignore"];

impl OpsApi {
    /// Records the operation (or finds the one this request started) and starts it.
    pub(crate) async fn start_bulk(
        &self,
        who: Principal,
        body: pb::BulkActRequest,
    ) -> Result<Response<pb::Operation>, Status> {
        let tenant = match parse_parent(&body.parent)? {
            Some(t) if who.can_see(&t) => t,
            Some(t) => return Err(Status::not_found(format!("no tenant {t}"))),
            None => {
                return Err(Status::invalid_argument(
                    "a bulk operation acts on one tenant: parent is tenants/<tenant>",
                ));
            }
        };
        if !ACTIONS.contains(&body.action.as_str()) {
            return Err(Status::invalid_argument(format!(
                "action is retry, resolve or ignore, not {:?}",
                body.action
            )));
        }
        if body.action == "ignore" && body.note.trim().is_empty() {
            return Err(Status::invalid_argument("ignoring needs a reason (note)"));
        }
        let query = query(&tenant, &body.filter)?;
        let total = self
            .store()
            .count_exceptions(&query)
            .await
            .map_err(internal)?;
        let (id, new) = self
            .store()
            .create_bulk(&NewBulk {
                tenant: &tenant,
                action: &body.action,
                filter: &body.filter,
                note: &body.note,
                created_by: &who.name,
                role: who.role.as_str(),
                request_id: Some(body.request_id.as_str()).filter(|r| !r.is_empty()),
                total,
            })
            .await
            .map_err(internal)?;
        if new {
            tracing::info!(actor = %who.name, %tenant, action = %body.action, total, operation = %id, "bulk operation started");
            self.spawn_bulk(id);
        }
        self.operation(id).await
    }

    /// Runs operation `id` in the background until it is done or cancelled.
    pub(crate) fn spawn_bulk(&self, id: Uuid) {
        let api = self.clone();
        tokio::spawn(async move {
            if let Err(e) = api.run_bulk(id).await {
                // Left running: the upkeep resumes it from its last page.
                tracing::warn!(operation = %id, error = %e, "bulk operation interrupted");
            }
        });
    }

    async fn run_bulk(&self, id: Uuid) -> Result<(), Status> {
        loop {
            let op = self
                .store()
                .bulk(id)
                .await
                .map_err(internal)?
                .ok_or_else(|| Status::not_found("the operation is gone"))?;
            if op.state != "running" {
                return Ok(());
            }
            if op.cancel_requested {
                self.store()
                    .finish_bulk(id, "cancelled")
                    .await
                    .map_err(internal)?;
                return Ok(());
            }
            let mut q = query(&op.tenant, &op.filter)?;
            q.after = op.after_due.zip(op.after_id);
            q.limit = PAGE;
            let page = self.store().list_exceptions(&q).await.map_err(internal)?;
            let Some(last) = page.last().map(|e| (e.sla_due, e.id)) else {
                self.store()
                    .finish_bulk(id, "done")
                    .await
                    .map_err(internal)?;
                tracing::info!(operation = %id, "bulk operation done");
                return Ok(());
            };
            let who = Principal {
                name: op.created_by.clone(),
                role: Role::parse(&op.role).unwrap_or(Role::Finance),
                tenants: vec![op.tenant.clone()],
            };
            let outcomes: Vec<Result<(), Status>> = if op.action == "retry" {
                self.retry_page(&op, &who, &page).await
            } else {
                // A few at a time: each is a transaction with its audit row.
                // By index: a closure over borrowed items trips the Send check of the task.
                futures::stream::iter(0..page.len())
                    .map(|i| self.bulk_item(&op, &who, &page[i]))
                    .buffered(IN_FLIGHT)
                    .collect()
                    .await
            };
            let (mut succeeded, mut failed, mut errors) = (0i64, 0i64, Vec::new());
            for (e, outcome) in page.iter().zip(outcomes) {
                match outcome {
                    Ok(()) => succeeded += 1,
                    Err(status) => {
                        failed += 1;
                        errors.push(format!(
                            "{}: {}",
                            exception_name(&e.tenant, e.id),
                            status.message()
                        ));
                    }
                }
            }
            self.store()
                .bulk_progress(id, succeeded, failed, &errors, last)
                .await
                .map_err(internal)?;
        }
    }

    /// One exception of a bulk operation, checked as one call would be.
    async fn bulk_item(
        &self,
        op: &BulkRow,
        who: &Principal,
        e: &ferry_store::ops::OpsException,
    ) -> Result<(), Status> {
        if !who.may(Action::Act, &e.owner) {
            return Err(refused(who, e));
        }
        self.bulk_one(op, who, e).await
    }

    /// A page of a bulk retry, each exception checked as one call would be, its work
    /// re-driven and recorded a page at a time (one ledger update, the publishes
    /// pipelined, one update with its audit rows): a retry one by one took five round
    /// trips an exception.
    async fn retry_page(
        &self,
        op: &BulkRow,
        who: &Principal,
        page: &[OpsException],
    ) -> Vec<Result<(), Status>> {
        let mut outcomes = Vec::with_capacity(page.len());
        let mut go = Vec::new();
        for (i, e) in page.iter().enumerate() {
            outcomes.push(if !who.may(Action::Act, &e.owner) {
                Err(refused(who, e))
            } else if matches!(e.state.as_str(), "resolved" | "ignored") {
                // Closed meanwhile: nothing to re-drive.
                Ok(())
            } else if e.source_subject.is_none() || e.payload.is_empty() {
                Err(nothing_to_redrive(&e.kind))
            } else {
                go.push(i);
                Ok(())
            });
        }
        if let Err(status) = self.redrive(op, who, page, &go).await {
            for i in go {
                outcomes[i] = Err(status.clone());
            }
        }
        outcomes
    }

    async fn redrive(
        &self,
        op: &BulkRow,
        who: &Principal,
        page: &[OpsException],
        go: &[usize],
    ) -> Result<(), Status> {
        if go.is_empty() {
            return Ok(());
        }
        let refused_orders: Vec<i64> = go
            .iter()
            .map(|&i| &page[i])
            .filter(|e| e.kind == ExceptionKind::ErpRejected.as_str())
            .filter_map(|e| e.order_number)
            .collect();
        if !refused_orders.is_empty() {
            self.store()
                .ready_rejected_orders(&op.tenant, &refused_orders)
                .await
                .map_err(internal)?;
        }
        // The operation's id in the message id: a page resumed after a crash re-sends
        // what JetStream then drops as a duplicate.
        let messages: Vec<Outgoing> = go
            .iter()
            .map(|&i| &page[i])
            .filter_map(|e| {
                Some(Outgoing {
                    subject: e.source_subject.clone()?,
                    msg_id: format!("retry-{}-{}", e.id, op.id),
                    payload: e.payload.clone().into(),
                })
            })
            .collect();
        self.publisher().publish_all(&messages).await.map_err(|e| {
            tracing::error!(error = %e, "bulk retry: the work could not be re-driven");
            Status::unavailable("the message broker did not take the work; try again")
        })?;
        let ids: Vec<Uuid> = go.iter().map(|&i| page[i].id).collect();
        self.store()
            .mark_retrying(&ids, &who.name, &op.note)
            .await
            .map_err(internal)?;
        Ok(())
    }

    /// Resolves or ignores one exception (a resumed page meets exceptions it already
    /// closed: a no-op).
    async fn bulk_one(
        &self,
        op: &BulkRow,
        who: &Principal,
        e: &ferry_store::ops::OpsException,
    ) -> Result<(), Status> {
        let action = if op.action == "resolve" {
            ExceptionAction::Resolve {
                note: op.note.clone(),
            }
        } else {
            ExceptionAction::Ignore {
                reason: op.note.clone(),
            }
        };
        self.store()
            .act_on_exception(e.id, &who.name, &action, None)
            .await
            .map_err(internal)?;
        Ok(())
    }

    pub(crate) async fn operation(&self, id: Uuid) -> Result<Response<pb::Operation>, Status> {
        let op = self
            .store()
            .bulk(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no operation operations/{id}")))?;
        Ok(Response::new(to_pb(op)))
    }

    /// The operation `name` if the caller may see its tenant.
    async fn visible_operation(&self, who: &Principal, name: &str) -> Result<BulkRow, Status> {
        let not_found = || Status::not_found(format!("no operation {name}"));
        let id = name
            .strip_prefix("operations/")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("{name:?} is not an operation (operations/<id>)"))
            })?;
        match self.store().bulk(id).await.map_err(internal)? {
            Some(op) if who.can_see(&op.tenant) => Ok(op),
            _ => Err(not_found()),
        }
    }
}

fn refused(who: &Principal, e: &OpsException) -> Status {
    Status::permission_denied(format!(
        "{} may not act on an exception owned by {}",
        who.role, e.owner
    ))
}

/// The list query of a bulk operation's filter, within its tenant.
fn query(tenant: &str, text: &str) -> Result<ExceptionQuery, Status> {
    let f = filter::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(f.query(Some(vec![tenant.to_owned()]), None, PAGE))
}

fn to_pb(op: BulkRow) -> pb::Operation {
    pb::Operation {
        name: format!("operations/{}", op.id),
        tenant: op.tenant,
        action: op.action,
        filter: op.filter,
        state: op.state,
        total: op.total,
        succeeded: op.succeeded,
        failed: op.failed,
        errors: op.errors.0,
        created_by: op.created_by,
        created_at: Some(timestamp(op.created_at)),
        finished_at: op.finished_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl OperationService for OpsApi {
    async fn get_operation(
        &self,
        request: Request<pb::GetOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let who = self.caller(&request, "GetOperation").await?;
        let op = self
            .visible_operation(&who, &request.get_ref().name)
            .await?;
        Ok(Response::new(to_pb(op)))
    }

    async fn cancel_operation(
        &self,
        request: Request<pb::CancelOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let who = self.caller(&request, "CancelOperation").await?;
        let op = self
            .visible_operation(&who, &request.get_ref().name)
            .await?;
        if op.created_by != who.name && !matches!(who.role, Role::Admin | Role::Engineering) {
            return Err(Status::permission_denied(
                "only who started an operation (or engineering) may cancel it",
            ));
        }
        self.store().cancel_bulk(op.id).await.map_err(internal)?;
        self.operation(op.id).await
    }
}
