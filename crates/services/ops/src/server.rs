//! The gRPC service: each call authenticated by its bearer token, checked against the
//! caller's role and tenants, then answered from the store. A tenant the caller may not
//! see answers NotFound, as if the exception did not exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use ferry_domain::Rules;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::exception_service_server::ExceptionService;
use ferry_runtime::nats::{Outgoing, Publisher, Topology};
use ferry_store::Store;
use ferry_store::ops::{ExceptionAction, OpsException};
use tonic::{Request, Response, Status};

use crate::access::{Action, Principal, Role};
use crate::convert::{exception, page_token, parse_exception_name, parse_page_token, parse_parent};
use crate::filter;
use crate::tokens;

/// A page when the caller does not say, and the most a caller may ask for.
const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 500;

/// The operations API over the store (and JetStream, where retries re-drive work).
#[derive(Clone)]
pub struct OpsApi {
    store: Store,
    publisher: Publisher,
    topology: Topology,
    /// The tenants this deployment serves (what `*` in a token stands for).
    tenants: Vec<String>,
    /// Each tenant's order-to-cash rules, for replays.
    rules: Arc<BTreeMap<String, Rules>>,
    /// Each tenant's fulfilment settings (its carriers' tracking pages).
    fulfilment: Arc<BTreeMap<String, ferry_config::FulfilmentConfig>>,
}

impl OpsApi {
    pub fn new(
        store: Store,
        publisher: Publisher,
        topology: Topology,
        tenants: &[ferry_config::TenantConfig],
    ) -> OpsApi {
        OpsApi {
            store,
            publisher,
            topology,
            tenants: tenants.iter().map(|t| t.id.clone()).collect(),
            rules: Arc::new(
                tenants
                    .iter()
                    .map(|t| (t.id.clone(), t.rules.clone()))
                    .collect(),
            ),
            fulfilment: Arc::new(
                tenants
                    .iter()
                    .map(|t| (t.id.clone(), t.fulfilment.clone()))
                    .collect(),
            ),
        }
    }

    /// The tracking page of a shipment, where the tenant names one for its carrier.
    pub(crate) fn tracking_url(&self, tenant: &str, carrier: &str, number: &str) -> String {
        self.fulfilment
            .get(tenant)
            .and_then(|f| f.tracking_url(carrier, number))
            .unwrap_or_default()
    }

    pub(crate) fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A tenant's rules; `None` for a tenant this deployment does not serve.
    pub(crate) fn rules(&self, tenant: &str) -> Option<&Rules> {
        self.rules.get(tenant)
    }

    /// The tenants the caller may see, by name.
    pub(crate) fn tenants_of(&self, who: &Principal) -> Vec<String> {
        if who.sees_every_tenant() {
            self.tenants.clone()
        } else {
            who.tenants.clone()
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The caller of `request`, from its `authorization: Bearer <token>`. Refusals are
    /// logged without the token.
    pub(crate) async fn caller<T>(
        &self,
        request: &Request<T>,
        method: &str,
    ) -> Result<Principal, Status> {
        if let Some(SignedIn(who)) = request.extensions().get::<SignedIn>() {
            return Ok(who.clone());
        }
        let secret = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                tracing::warn!(method, "refused: no bearer token");
                Status::unauthenticated("a bearer token is required (ferry tokens create)")
            })?;
        let row = self
            .store
            .token_by_hash(&tokens::hash(secret))
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                tracing::warn!(method, "refused: unknown or revoked token");
                Status::unauthenticated("the token is unknown or revoked")
            })?;
        principal(row)
    }

    /// The exception `name` if the caller may see its tenant (NotFound otherwise).
    pub(crate) async fn visible(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<OpsException, Status> {
        let (tenant, id) = parse_exception_name(name)?;
        let not_found = || Status::not_found(format!("no exception {name}"));
        if !who.can_see(&tenant) {
            return Err(not_found());
        }
        match self.store.exception_by_id(id).await.map_err(internal)? {
            Some(e) if e.tenant == tenant => Ok(e),
            _ => Err(not_found()),
        }
    }

    /// Does `action` to the exception `name` for the caller, and answers it as it is now.
    async fn act<T>(
        &self,
        request: Request<T>,
        method: &str,
        name: impl Fn(&T) -> &str,
        request_id: impl Fn(&T) -> &str,
        action: impl Fn(&T) -> Result<ExceptionAction, Status>,
    ) -> Result<Response<pb::Exception>, Status> {
        let who = self.caller(&request, method).await?;
        let body = request.into_inner();
        let found = self.visible(&who, name(&body)).await?;
        let action = action(&body)?;
        let needs = match action {
            ExceptionAction::Comment { .. } => Action::Comment,
            _ => Action::Act,
        };
        if !who.may(needs, &found.owner) {
            tracing::warn!(method, actor = %who.name, role = %who.role, owner = %found.owner, "refused: not the owning team");
            return Err(Status::permission_denied(format!(
                "{} may not {} an exception owned by {}",
                who.role,
                action.name(),
                found.owner
            )));
        }
        let id = found.id;
        let request_id = Some(request_id(&body)).filter(|r| !r.is_empty());
        self.store
            .act_on_exception(id, &who.name, &action, request_id)
            .await
            .map_err(internal)?;
        self.answer(id, true).await
    }

    async fn answer(&self, id: uuid::Uuid, full: bool) -> Result<Response<pb::Exception>, Status> {
        let e = self
            .store
            .exception_by_id(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("the exception is gone"))?;
        let audit = if full {
            self.store.exception_audit(id).await.map_err(internal)?
        } else {
            Vec::new()
        };
        Ok(Response::new(exception(e, audit, full, Utc::now())))
    }
}

impl OpsApi {
    /// Re-drives one exception's stored work as `actor` (its permission already checked):
    /// a closed exception is left alone; one with nothing stored is FailedPrecondition.
    pub(crate) async fn retry_one(
        &self,
        found: &OpsException,
        actor: &str,
        request_id: Option<&str>,
    ) -> Result<(), Status> {
        if matches!(found.state.as_str(), "resolved" | "ignored") {
            return Ok(());
        }
        let subject = found
            .source_subject
            .clone()
            .filter(|_| !found.payload.is_empty())
            .ok_or_else(|| nothing_to_redrive(&found.kind))?;
        if found.kind == ferry_domain::ExceptionKind::ErpRejected.as_str()
            && let Some(order) = found.order_number
        {
            self.store
                .ready_rejected_orders(&found.tenant, &[order])
                .await
                .map_err(internal)?;
        }
        // Durable before it is recorded: a call that fails after this is retried, and the
        // same id makes JetStream drop the second copy (consumers are idempotent anyway).
        let msg_id = format!(
            "retry-{}-{}",
            found.id,
            request_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
        );
        self.publisher
            .publish(&Outgoing {
                subject,
                msg_id,
                payload: found.payload.clone().into(),
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "retry: the work could not be re-driven");
                Status::unavailable("the message broker did not take the work; try again")
            })?;
        self.store
            .act_on_exception(found.id, actor, &ExceptionAction::Retry, request_id)
            .await
            .map_err(internal)?;
        Ok(())
    }
}

/// A caller the console has already authenticated by its session cookie. Only the console,
/// in this process, puts it on a request: a remote client cannot set a request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn(pub(crate) Principal);

/// Who a stored token says its holder is.
pub(crate) fn principal(row: ferry_store::ops::TokenRow) -> Result<Principal, Status> {
    let role = Role::parse(&row.role)
        .ok_or_else(|| Status::internal(format!("token {} has an unknown role", row.id)))?;
    Ok(Principal {
        name: row.name,
        role,
        tenants: row.tenants,
    })
}

/// A retry of an exception that stored no work.
pub(crate) fn nothing_to_redrive(kind: &str) -> Status {
    Status::failed_precondition(format!(
        "{kind} has no stored work to re-drive: fix the cause (the message says what) \
         and Ferry picks it up by itself, then resolve it"
    ))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "operations API: store error");
    Status::unavailable("the database did not answer; try again")
}

fn required(value: &str, what: &str) -> Result<String, Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(value.to_owned())
    }
}

#[tonic::async_trait]
impl ExceptionService for OpsApi {
    async fn list_exceptions(
        &self,
        request: Request<pb::ListExceptionsRequest>,
    ) -> Result<Response<pb::ListExceptionsResponse>, Status> {
        let who = self.caller(&request, "ListExceptions").await?;
        let body = request.into_inner();
        let tenants = match parse_parent(&body.parent)? {
            // A tenant the caller may not see holds nothing it may list.
            Some(t) if !who.can_see(&t) => {
                return Err(Status::not_found(format!("no tenant {t}")));
            }
            Some(t) => Some(vec![t]),
            None if who.sees_every_tenant() => None,
            None => Some(who.tenants.clone()),
        };
        let f = filter::parse(&body.filter).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let size = match body.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(Status::invalid_argument("page_size is negative")),
            n => n.min(MAX_PAGE),
        };
        // One more than the page: whether there is a next one.
        let query = f.query(
            tenants,
            parse_page_token(&body.page_token)?,
            i64::from(size) + 1,
        );
        let mut rows = self.store.list_exceptions(&query).await.map_err(internal)?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next_page_token = if more {
            rows.last().map(page_token).unwrap_or_default()
        } else {
            String::new()
        };
        let now = Utc::now();
        Ok(Response::new(pb::ListExceptionsResponse {
            exceptions: rows
                .into_iter()
                .map(|e| exception(e, Vec::new(), false, now))
                .collect(),
            next_page_token,
        }))
    }

    async fn get_exception(
        &self,
        request: Request<pb::GetExceptionRequest>,
    ) -> Result<Response<pb::Exception>, Status> {
        let who = self.caller(&request, "GetException").await?;
        let found = self.visible(&who, &request.get_ref().name).await?;
        self.answer(found.id, true).await
    }

    async fn resolve_exception(
        &self,
        request: Request<pb::ResolveExceptionRequest>,
    ) -> Result<Response<pb::Exception>, Status> {
        self.act(
            request,
            "ResolveException",
            |b| &b.name,
            |b| &b.request_id,
            |b| {
                Ok(ExceptionAction::Resolve {
                    note: b.note.clone(),
                })
            },
        )
        .await
    }

    async fn ignore_exception(
        &self,
        request: Request<pb::IgnoreExceptionRequest>,
    ) -> Result<Response<pb::Exception>, Status> {
        self.act(
            request,
            "IgnoreException",
            |b| &b.name,
            |b| &b.request_id,
            |b| {
                Ok(ExceptionAction::Ignore {
                    reason: required(&b.reason, "reason")?,
                })
            },
        )
        .await
    }

    async fn assign_exception(
        &self,
        request: Request<pb::AssignExceptionRequest>,
    ) -> Result<Response<pb::Exception>, Status> {
        self.act(
            request,
            "AssignException",
            |b| &b.name,
            |b| &b.request_id,
            |b| {
                Ok(ExceptionAction::Assign {
                    assignee: Some(b.assignee.trim().to_owned()).filter(|a| !a.is_empty()),
                })
            },
        )
        .await
    }

    async fn retry_exception(
        &self,
        request: Request<pb::RetryExceptionRequest>,
    ) -> Result<Response<pb::Exception>, Status> {
        let who = self.caller(&request, "RetryException").await?;
        let body = request.into_inner();
        let found = self.visible(&who, &body.name).await?;
        if !who.may(Action::Act, &found.owner) {
            tracing::warn!(actor = %who.name, role = %who.role, owner = %found.owner, "refused: not the owning team");
            return Err(Status::permission_denied(format!(
                "{} may not retry an exception owned by {}",
                who.role, found.owner
            )));
        }
        let request_id = Some(body.request_id.as_str()).filter(|r| !r.is_empty());
        if let Some(r) = request_id
            && self
                .store
                .request_seen(&who.name, r)
                .await
                .map_err(internal)?
        {
            return self.answer(found.id, true).await;
        }
        self.retry_one(&found, &who.name, request_id).await?;
        self.answer(found.id, true).await
    }

    async fn bulk_act_on_exceptions(
        &self,
        request: Request<pb::BulkActRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let who = self.caller(&request, "BulkActOnExceptions").await?;
        self.start_bulk(who, request.into_inner()).await
    }

    async fn comment_exception(
        &self,
        request: Request<pb::CommentExceptionRequest>,
    ) -> Result<Response<pb::Exception>, Status> {
        self.act(
            request,
            "CommentException",
            |b| &b.name,
            |b| &b.request_id,
            |b| {
                Ok(ExceptionAction::Comment {
                    text: required(&b.text, "text")?,
                })
            },
        )
        .await
    }
}
