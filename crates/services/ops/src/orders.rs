//! The order search and timeline: customer service's "where is order 48170?", answered
//! from what every service recorded. Every role may read the orders of its tenants.

use chrono::Utc;
use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::order_service_server::OrderService;
use ferry_store::ops::ExceptionQuery;
use ferry_store::timeline::OrderFound;
use tonic::{Request, Response, Status};

use crate::access::Role;
use crate::convert::{exception, parse_parent, timestamp};
use crate::server::{OpsApi, internal};

/// `tenants/<tenant>/orders/<number>`.
pub fn order_name(tenant: &str, number: i64) -> String {
    format!("tenants/{tenant}/orders/{number}")
}

fn parse_order_name(name: &str) -> Result<(String, i64), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["tenants", tenant, "orders", number] if !tenant.is_empty() => {
            let number = number.parse().map_err(|_| {
                Status::invalid_argument(format!("{number:?} is not an order number"))
            })?;
            Ok(((*tenant).to_owned(), number))
        }
        _ => Err(Status::invalid_argument(format!(
            "{name:?} is not an order name (tenants/<tenant>/orders/<number>)"
        ))),
    }
}

fn summary(o: OrderFound) -> pb::OrderSummary {
    pb::OrderSummary {
        name: order_name(&o.tenant, o.order_number),
        number: o.order_number,
        state: o.state,
        erp_reference: o.erp_reference.unwrap_or_default(),
        gross_minor: o.gross_minor,
        currency: o.currency,
    }
}

#[tonic::async_trait]
impl OrderService for OpsApi {
    async fn search_orders(
        &self,
        request: Request<pb::SearchOrdersRequest>,
    ) -> Result<Response<pb::SearchOrdersResponse>, Status> {
        let who = self.caller(&request, "SearchOrders").await?;
        let body = request.into_inner();
        if body.query.trim().is_empty() {
            return Err(Status::invalid_argument(
                "query is required: an order number, an ERP document number, a tracking number \
                 or the customer's e-mail",
            ));
        }
        let tenants = match parse_parent(&body.parent)? {
            Some(t) if !who.can_see(&t) => {
                return Err(Status::not_found(format!("no tenant {t}")));
            }
            Some(t) => vec![t],
            None => self.tenants_of(&who),
        };
        let found = self
            .store()
            .search_orders(&tenants, &body.query)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::SearchOrdersResponse {
            orders: found.into_iter().map(summary).collect(),
        }))
    }

    async fn replay_order(
        &self,
        request: Request<pb::ReplayOrderRequest>,
    ) -> Result<Response<pb::ReplayOrderResponse>, Status> {
        let who = self.caller(&request, "ReplayOrder").await?;
        let r = request.into_inner();
        let (tenant, number) = parse_order_name(&r.name)?;
        // Applying changes what reaches the ERP: the teams that own order data, not
        // customer service (who may look at the difference).
        if !r.dry_run && who.role == Role::CustomerService && who.can_see(&tenant) {
            tracing::warn!(caller = %who.name, order = %r.name, "replay refused: role");
            return Err(Status::permission_denied(
                "customer service may look at a replay's difference (dry run) but not apply it",
            ));
        }
        let mut answer = self
            .replay(&who, &r.name, &tenant, number, r.dry_run, &r.request_id)
            .await?;
        answer.order = self
            .store()
            .order_timeline(&tenant, number)
            .await
            .map_err(internal)?
            .map(|t| summary(t.order));
        Ok(Response::new(answer))
    }

    async fn get_order_timeline(
        &self,
        request: Request<pb::GetOrderTimelineRequest>,
    ) -> Result<Response<pb::OrderTimeline>, Status> {
        let who = self.caller(&request, "GetOrderTimeline").await?;
        let name = request.into_inner().name;
        let (tenant, number) = parse_order_name(&name)?;
        let not_found = || Status::not_found(format!("no order {name}"));
        if !who.can_see(&tenant) {
            return Err(not_found());
        }
        let timeline = self
            .store()
            .order_timeline(&tenant, number)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let shipments = self
            .store()
            .shipments_of_orders(&tenant, &[number])
            .await
            .map_err(internal)?
            .into_iter()
            .map(|s| {
                let carrier = s.carrier.unwrap_or_default();
                let tracking_number = s.tracking_number.unwrap_or_default();
                pb::Shipment {
                    tracking_url: if tracking_number.is_empty() {
                        String::new()
                    } else {
                        self.tracking_url(&tenant, &carrier, &tracking_number)
                    },
                    erp_shipment_id: s.erp_shipment_id,
                    carrier,
                    tracking_number,
                    shipped_at: Some(timestamp(s.first_seen_at)),
                    in_centra_at: s.centra_completed_at.map(timestamp),
                }
            })
            .collect();
        let exceptions = self
            .store()
            .list_exceptions(&ExceptionQuery {
                tenants: Some(vec![tenant]),
                order: Some(number),
                limit: 100,
                ..ExceptionQuery::default()
            })
            .await
            .map_err(internal)?;
        let now = Utc::now();
        Ok(Response::new(pb::OrderTimeline {
            order: Some(summary(timeline.order)),
            steps: timeline
                .steps
                .into_iter()
                .map(|s| pb::TimelineStep {
                    at: Some(timestamp(s.at)),
                    step: s.step,
                    by: s.by,
                    detail: s.detail,
                    trace_id: s.trace_id,
                })
                .collect(),
            verdict: timeline.verdict.unwrap_or_default(),
            causes: timeline.causes,
            exceptions: exceptions
                .into_iter()
                .map(|e| exception(e, Vec::new(), false, now))
                .collect(),
            shipments,
        }))
    }
}
