//! Replay: an order's latest Centra snapshot through today's mapping and rules, compared
//! line by line with the sales order Ferry posted (the `OrderReady` the writer took, kept
//! in the ORDERS stream). Applying it sends the snapshot through the transform again,
//! marked as a replay: an order not yet posted goes to the ERP the usual way, a posted
//! one becomes an amendment (with the finance exception that comes with it) — the ledger's
//! one-document-per-order rule means never a second sales order.

use bytes::Bytes;
use ferry_domain::transform::LineKind;
use ferry_domain::{Release, SalesOrder, Snapshot, transform};
use ferry_proto::centra::v1 as centra_pb;
use ferry_proto::ops::v1 as pb;
use ferry_proto::order::v1 as order_pb;
use ferry_runtime::{Outgoing, StreamKind};
use prost::Message as _;
use tonic::Status;

use crate::access::Principal;
use crate::server::{OpsApi, internal};

/// One line as posted or as it would be posted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: &'static str,
    pub centra_line_id: Option<i64>,
    pub sku: String,
    pub erp_item: String,
    pub quantity: i64,
    pub gross: i64,
    pub tax: i64,
}

impl Line {
    fn key(&self) -> (&'static str, Option<i64>, &str) {
        (self.kind, self.centra_line_id, &self.sku)
    }
}

fn kind_name(k: LineKind) -> &'static str {
    match k {
        LineKind::Item => "item",
        LineKind::Shipping => "shipping",
        LineKind::Handling => "handling",
    }
}

/// The lines of the sales order Ferry posted.
pub fn posted_lines(order: &order_pb::SalesOrder) -> Vec<Line> {
    order
        .lines
        .iter()
        .map(|l| Line {
            kind: match order_pb::LineKind::try_from(l.kind) {
                Ok(order_pb::LineKind::Shipping) => "shipping",
                Ok(order_pb::LineKind::Handling) => "handling",
                _ => "item",
            },
            centra_line_id: l.centra_line_id,
            sku: l.sku.clone().unwrap_or_default(),
            erp_item: l.erp_item.clone(),
            quantity: l.quantity,
            gross: l.gross_minor,
            tax: l.tax_minor,
        })
        .collect()
}

/// The lines the transform makes of the order today.
pub fn current_lines(order: &SalesOrder) -> Vec<Line> {
    order
        .lines
        .iter()
        .map(|l| Line {
            kind: kind_name(l.kind),
            centra_line_id: l.centra_line_id,
            sku: l.sku.clone().unwrap_or_default(),
            erp_item: l.erp_item.clone().unwrap_or_default(),
            quantity: l.quantity,
            gross: l.gross,
            tax: l.tax,
        })
        .collect()
}

/// The lines that differ, matched by (kind, Centra line, SKU): posted ones first, in
/// their order, then the added ones.
pub fn diff(before: &[Line], after: &[Line]) -> Vec<pb::LineDiff> {
    let mut out = Vec::new();
    let entry = |change: &str, b: Option<&Line>, a: Option<&Line>| {
        let any = b.or(a);
        pb::LineDiff {
            change: change.to_owned(),
            kind: any.map(|l| l.kind).unwrap_or_default().to_owned(),
            sku: any.map(|l| l.sku.clone()).unwrap_or_default(),
            previous_erp_item: b.map(|l| l.erp_item.clone()).unwrap_or_default(),
            erp_item: a.map(|l| l.erp_item.clone()).unwrap_or_default(),
            previous_quantity: b.map_or(0, |l| l.quantity),
            quantity: a.map_or(0, |l| l.quantity),
            previous_gross_minor: b.map_or(0, |l| l.gross),
            gross_minor: a.map_or(0, |l| l.gross),
            previous_tax_minor: b.map_or(0, |l| l.tax),
            tax_minor: a.map_or(0, |l| l.tax),
        }
    };
    for b in before {
        match after.iter().find(|a| a.key() == b.key()) {
            None => out.push(entry("removed", Some(b), None)),
            Some(a) if a != b => out.push(entry("changed", Some(b), Some(a))),
            Some(_) => {}
        }
    }
    for a in after
        .iter()
        .filter(|a| !before.iter().any(|b| b.key() == a.key()))
    {
        out.push(entry("added", None, Some(a)));
    }
    out
}

fn totals(lines: &[Line]) -> (i64, i64) {
    lines
        .iter()
        .fold((0, 0), |(g, t), l| (g + l.gross, t + l.tax))
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

    /// The sales order Ferry posted: the last `OrderReady` of the order.
    async fn posted_order(&self, tenant: &str, number: i64) -> Option<order_pb::SalesOrder> {
        let topology = self.topology();
        let stream = self
            .publisher()
            .context()
            .get_stream(topology.stream_name(StreamKind::Orders))
            .await
            .ok()?;
        let message = stream
            .get_last_raw_message_by_subject(&topology.ready_subject(tenant, number))
            .await
            .ok()?;
        order_pb::OrderReady::decode(message.payload.as_ref())
            .ok()?
            .order
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
        let after = current_lines(&now);
        let reached_erp = matches!(
            row.state.as_str(),
            "posting" | "possibly_created" | "posted"
        );
        let (compared_with, before, previous) = if reached_erp {
            match self.posted_order(tenant, number).await {
                Some(posted) => {
                    let lines = posted_lines(&posted);
                    let sums = totals(&lines);
                    ("posted", lines, sums)
                }
                None => (
                    "totals",
                    Vec::new(),
                    (row.gross_minor.unwrap_or(0), row.tax_minor.unwrap_or(0)),
                ),
            }
        } else {
            ("nothing", Vec::new(), (0, 0))
        };
        let lines = if compared_with == "totals" {
            Vec::new()
        } else {
            diff(&before, &after)
        };
        let (gross, tax) = if now.release == Release::Cancelled {
            (0, 0)
        } else {
            totals(&after)
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(id: i64, item: &str, q: i64) -> Line {
        Line {
            kind: "item",
            centra_line_id: Some(id),
            sku: format!("SKU-{id}"),
            erp_item: item.into(),
            quantity: q,
            gross: 10_000 * q,
            tax: 2_000 * q,
        }
    }

    #[test]
    fn a_remapped_item_a_new_line_and_a_dropped_one() {
        let before = [line(1, "A", 1), line(2, "B", 2)];
        let after = [line(1, "A2", 1), line(3, "C", 1)];
        let d = diff(&before, &after);
        let summary: Vec<(&str, &str, &str, &str)> = d
            .iter()
            .map(|l| {
                (
                    l.change.as_str(),
                    l.sku.as_str(),
                    l.previous_erp_item.as_str(),
                    l.erp_item.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("changed", "SKU-1", "A", "A2"),
                ("removed", "SKU-2", "B", ""),
                ("added", "SKU-3", "", "C"),
            ]
        );
        assert_eq!((d[1].previous_quantity, d[1].quantity), (2, 0));
        assert_eq!((d[2].gross_minor, d[2].tax_minor), (10_000, 2_000));
    }

    proptest! {
        /// No difference from itself; against nothing, every line is added; and the money
        /// the differences carry is exactly the change in totals.
        #[test]
        fn differences_account_for_the_totals(
            a in proptest::collection::vec((0i64..20, 0u8..3, 1i64..5), 0..12),
            b in proptest::collection::vec((0i64..20, 0u8..3, 1i64..5), 0..12),
        ) {
            let lines = |v: &Vec<(i64, u8, i64)>| {
                let mut seen = std::collections::BTreeSet::new();
                v.iter()
                    .filter(|(id, _, _)| seen.insert(*id))
                    .map(|(id, item, q)| line(*id, ["A", "B", "C"][*item as usize], *q))
                    .collect::<Vec<_>>()
            };
            let (before, after) = (lines(&a), lines(&b));
            prop_assert!(diff(&before, &before).is_empty());
            prop_assert_eq!(diff(&[], &after).len(), after.len());
            let d = diff(&before, &after);
            let moved: i64 = d.iter().map(|l| l.gross_minor - l.previous_gross_minor).sum();
            prop_assert_eq!(moved, totals(&after).0 - totals(&before).0);
        }
    }
}
