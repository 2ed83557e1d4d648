//! Replay: an order's latest Centra snapshot through today's mapping and rules, compared
//! line by line with the sales order Ferry posted (the `OrderReady` the writer took, kept
//! in the ORDERS stream). Applying it sends the snapshot through the transform again,
//! marked as a replay: an order not yet posted goes to the ERP the usual way, a posted
//! one becomes an amendment (with the finance exception that comes with it) — the ledger's
//! one-document-per-order rule means never a second sales order.

use bytes::Bytes;
use ferry_domain::{Release, Snapshot, transform};
use ferry_proto::centra::v1 as centra_pb;
use ferry_proto::ops::v1 as pb;
use ferry_proto::order::v1 as order_pb;
use ferry_runtime::{Outgoing, StreamKind};
use ferry_transform::amend::{posted_changes, posted_order};
use prost::Message as _;
use tonic::Status;

use crate::access::Principal;
use crate::server::{OpsApi, internal};

/// A line change as the API shows it.
fn line_diff(c: order_pb::LineChange) -> pb::LineDiff {
    let change = match order_pb::LineChangeKind::try_from(c.change) {
        Ok(order_pb::LineChangeKind::Added) => "added",
        Ok(order_pb::LineChangeKind::Removed) => "removed",
        _ => "changed",
    };
    let kind = match order_pb::LineKind::try_from(c.kind) {
        Ok(order_pb::LineKind::Shipping) => "shipping",
        Ok(order_pb::LineKind::Handling) => "handling",
        _ => "item",
    };
    pb::LineDiff {
        change: change.to_owned(),
        kind: kind.to_owned(),
        sku: c.sku.unwrap_or_default(),
        previous_erp_item: c.previous_erp_item,
        erp_item: if change == "removed" {
            String::new()
        } else {
            c.erp_item
        },
        previous_quantity: c.previous_quantity,
        quantity: c.quantity,
        previous_gross_minor: c.previous_gross_minor,
        gross_minor: c.gross_minor,
        previous_tax_minor: c.previous_tax_minor,
        tax_minor: c.tax_minor,
    }
}

impl OpsApi {
    /// The latest Centra snapshot Ferry has of the order: the CENTRA stream's last one
    /// (kept 14 days), else the one the ledger kept for an order that waits.
    async fn latest_snapshot(
        &self,
        tenant: &str,
        number: i64,
    ) -> Result<Option<centra_pb::OrderSnapshot>, Status> {
        let topology = self.topology();
        let js = self.publisher().context();
        if let Ok(stream) = js
            .get_stream(topology.stream_name(StreamKind::Centra))
            .await
            && let Ok(message) = stream
                .get_last_raw_message_by_subject(&topology.snapshot_subject(tenant, number))
                .await
        {
            return centra_pb::OrderSnapshot::decode(message.payload.as_ref())
                .map(Some)
                .map_err(|e| Status::data_loss(format!("order {number}'s snapshot: {e}")));
        }
        let kept = self
            .store()
            .kept_snapshot(tenant, number)
            .await
            .map_err(internal)?;
        Ok(kept.map(|k| centra_pb::OrderSnapshot {
            tenant: tenant.to_owned(),
            order_number: number,
            snapshot_json: k.body.into(),
            content_hash: k.snapshot_hash,
            fetched_at: Some(ferry_proto::timestamp(k.snapshot_fetched_at.into())),
            source: centra_pb::Source::Replay as i32,
            first_accepted_at: k
                .first_accepted_at
                .map(|t| ferry_proto::timestamp(t.into())),
        }))
    }

    pub(crate) async fn replay(
        &self,
        who: &Principal,
        name: &str,
        tenant: &str,
        number: i64,
        dry_run: bool,
        request_id: &str,
    ) -> Result<pb::ReplayOrderResponse, Status> {
        let not_found = || Status::not_found(format!("no order {name}"));
        let (Some(rules), true) = (self.rules(tenant), who.can_see(tenant)) else {
            return Err(not_found());
        };
        let row = self
            .store()
            .ledger_row(tenant, number)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let snapshot_message = self.latest_snapshot(tenant, number).await?.ok_or_else(|| {
            Status::failed_precondition(format!(
                "order {number}'s Centra data is no longer kept; a resync fetches it again"
            ))
        })?;
        let snapshot = Snapshot::parse(&snapshot_message.snapshot_json)
            .map_err(|e| Status::failed_precondition(format!("order {number}'s snapshot: {e}")))?;
        let items = self.store().sku_map(tenant).await.map_err(internal)?;
        let now = transform(&snapshot, rules, &items);
        let reached_erp = matches!(
            row.state.as_str(),
            "posting" | "possibly_created" | "posted"
        );
        let posted = if reached_erp {
            posted_order(self.publisher().context(), self.topology(), tenant, number).await
        } else {
            None
        };
        let (compared_with, previous) = match (&posted, reached_erp) {
            (Some(p), _) => {
                let t = p.totals.unwrap_or_default();
                ("posted", (t.gross_minor, t.tax_minor))
            }
            (None, true) => (
                "totals",
                (row.gross_minor.unwrap_or(0), row.tax_minor.unwrap_or(0)),
            ),
            (None, false) => ("nothing", (0, 0)),
        };
        // A cancelled order holds nothing: every posted line is removed.
        let mut after = now.clone();
        if now.release == Release::Cancelled {
            after.lines.clear();
        }
        let lines: Vec<pb::LineDiff> = if compared_with == "totals" {
            Vec::new()
        } else {
            posted_changes(posted.as_ref(), &after)
                .into_iter()
                .map(line_diff)
                .collect()
        };
        let (gross, tax) = after
            .lines
            .iter()
            .fold((0, 0), |(g, t), l| (g + l.gross, t + l.tax));
        let action = match (now.release, reached_erp) {
            (Release::Rejected | Release::Held, false) => "hold",
            (Release::Cancelled, false) => "none",
            (_, false) => "post",
            (Release::Held, true) => "none",
            (_, true)
                if lines.is_empty()
                    && previous == (gross, tax)
                    && now.release != Release::Cancelled =>
            {
                "none"
            }
            (_, true) => "amend",
        };
        let applied = !dry_run && matches!(action, "post" | "amend");
        if applied {
            let id = if request_id.is_empty() {
                uuid::Uuid::now_v7().to_string()
            } else {
                format!("{}:{request_id}", who.name)
            };
            let message = centra_pb::OrderSnapshot {
                source: centra_pb::Source::Replay as i32,
                ..snapshot_message.clone()
            };
            self.publisher()
                .publish(&Outgoing {
                    subject: self.topology().snapshot_subject(tenant, number),
                    msg_id: format!(
                        "{tenant}:{number}:{}:replay:{id}",
                        snapshot_message.content_hash
                    ),
                    payload: Bytes::from(message.encode_to_vec()),
                })
                .await
                .map_err(|e| Status::unavailable(format!("the replay was not sent: {e}")))?;
            tracing::info!(tenant, order = number, by = %who.name, action, "order replayed");
        }
        Ok(pb::ReplayOrderResponse {
            order: None,
            release: now.release.as_str().to_owned(),
            problems: now.problems.iter().map(|p| p.message.clone()).collect(),
            compared_with: compared_with.to_owned(),
            lines,
            currency: now.currency.clone(),
            previous_gross_minor: previous.0,
            gross_minor: gross,
            previous_tax_minor: previous.1,
            tax_minor: tax,
            action: action.to_owned(),
            applied,
        })
    }
}
