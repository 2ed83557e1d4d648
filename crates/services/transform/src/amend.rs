//! Orders that change after they reached the ERP: the difference between what the ERP holds
//! and the newer order, as an `OrderAmended` event — never a second sales order.
//!
//! The earlier version is the snapshot the ledger recorded when the order went out; its
//! bytes are read back from the CENTRA stream (kept 14 days). Past that, the amendment
//! carries totals only (`lines_known = false`).

use ferry_domain::transform::LineKind;
use ferry_domain::{ItemMap, Rules, SalesOrder, Snapshot, transform};
use ferry_proto::centra::v1 as centra_pb;
use ferry_proto::order::v1 as pb;
use ferry_runtime::{ServiceBase, StreamKind, Topology};
use prost::Message as _;

/// Finds the snapshot with `hash` among the ones stored for the order.
pub async fn earlier_snapshot(
    base: &ServiceBase,
    tenant: &str,
    number: i64,
    hash: &str,
) -> Option<Vec<u8>> {
    let stream = base
        .js
        .get_stream(base.topology.stream_name(StreamKind::Centra))
        .await
        .ok()?;
    let subject = base.topology.snapshot_subject(tenant, number);
    // "First message on the subject at or after this sequence", walked forward.
    let mut next = stream
        .get_first_raw_message_by_subject(&subject, 1)
        .await
        .ok();
    // An order has a handful of snapshots; stop at a sane bound all the same.
    for _ in 0..1000 {
        let message = next?;
        if let Ok(snapshot) = centra_pb::OrderSnapshot::decode(message.payload.as_ref())
            && snapshot.content_hash == hash
        {
            return Some(snapshot.snapshot_json.to_vec());
        }
        next = stream
            .get_first_raw_message_by_subject(&subject, message.sequence + 1)
            .await
            .ok();
    }
    None
}

fn kind(k: LineKind) -> pb::LineKind {
    match k {
        LineKind::Item => pb::LineKind::Item,
        LineKind::Shipping => pb::LineKind::Shipping,
        LineKind::Handling => pb::LineKind::Handling,
    }
}

fn totals(o: &SalesOrder) -> pb::Totals {
    pb::Totals {
        gross_minor: o.totals.gross,
        tax_minor: o.totals.tax,
        net_minor: o.totals.net,
    }
}

/// A line as the ERP was sent it, or would be sent it now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    kind: pb::LineKind,
    centra_line_id: Option<i64>,
    sku: Option<String>,
    erp_item: String,
    quantity: i64,
    gross: i64,
    tax: i64,
}

impl View {
    fn key(&self) -> (pb::LineKind, Option<i64>, &Option<String>) {
        (self.kind, self.centra_line_id, &self.sku)
    }
}

fn views(o: &SalesOrder) -> Vec<View> {
    o.lines
        .iter()
        .map(|l| View {
            kind: kind(l.kind),
            centra_line_id: l.centra_line_id,
            sku: l.sku.clone(),
            erp_item: l.erp_item.clone().unwrap_or_default(),
            quantity: l.quantity,
            gross: l.gross,
            tax: l.tax,
        })
        .collect()
}

/// The lines of the sales order as the writer was sent it.
fn posted_views(o: &pb::SalesOrder) -> Vec<View> {
    o.lines
        .iter()
        .map(|l| View {
            kind: pb::LineKind::try_from(l.kind).unwrap_or(pb::LineKind::Item),
            centra_line_id: l.centra_line_id,
            sku: l.sku.clone(),
            erp_item: l.erp_item.clone(),
            quantity: l.quantity,
            gross: l.gross_minor,
            tax: l.tax_minor,
        })
        .collect()
}

fn change(b: Option<&View>, a: Option<&View>) -> pb::LineChange {
    let any = a.or(b);
    let kind = match (b, a) {
        (None, _) => pb::LineChangeKind::Added,
        (_, None) => pb::LineChangeKind::Removed,
        _ => pb::LineChangeKind::Changed,
    };
    pb::LineChange {
        change: kind as i32,
        kind: any.map_or(pb::LineKind::Item, |l| l.kind) as i32,
        centra_line_id: any.and_then(|l| l.centra_line_id),
        sku: any.and_then(|l| l.sku.clone()),
        erp_item: any.map(|l| l.erp_item.clone()).unwrap_or_default(),
        previous_erp_item: b.map(|l| l.erp_item.clone()).unwrap_or_default(),
        previous_quantity: b.map_or(0, |l| l.quantity),
        quantity: a.map_or(0, |l| l.quantity),
        previous_gross_minor: b.map_or(0, |l| l.gross),
        gross_minor: a.map_or(0, |l| l.gross),
        previous_tax_minor: b.map_or(0, |l| l.tax),
        tax_minor: a.map_or(0, |l| l.tax),
    }
}

/// The lines that differ — in quantity, money, tax or ERP item — matched by (kind,
/// Centra line, SKU).
fn line_changes(before: &[View], after: &[View]) -> Vec<pb::LineChange> {
    let mut out = Vec::new();
    for b in before {
        match after.iter().find(|a| a.key() == b.key()) {
            Some(a) if a == b => {}
            a => out.push(change(Some(b), a)),
        }
    }
    for a in after
        .iter()
        .filter(|a| !before.iter().any(|b| b.key() == a.key()))
    {
        out.push(change(None, Some(a)));
    }
    out
}

/// The lines that differ between two versions of an order.
pub fn changes(before: &SalesOrder, after: &SalesOrder) -> Vec<pb::LineChange> {
    line_changes(&views(before), &views(after))
}

/// The lines that differ between what Ferry posted (`None`: nothing) and an order as the
/// transform makes it now.
pub fn posted_changes(posted: Option<&pb::SalesOrder>, now: &SalesOrder) -> Vec<pb::LineChange> {
    let before = posted.map(posted_views).unwrap_or_default();
    line_changes(&before, &views(now))
}

/// The sales order Ferry sent the ERP: the order's last `OrderReady` (the ORDERS stream
/// keeps it 14 days).
pub async fn posted_order(
    js: &async_nats::jetstream::Context,
    topology: &Topology,
    tenant: &str,
    number: i64,
) -> Option<pb::SalesOrder> {
    let stream = js
        .get_stream(topology.stream_name(StreamKind::Orders))
        .await
        .ok()?;
    let message = stream
        .get_last_raw_message_by_subject(&topology.ready_subject(tenant, number))
        .await
        .ok()?;
    pb::OrderReady::decode(message.payload.as_ref()).ok()?.order
}

/// What the ledger knows about the version in the ERP.
pub struct Posted<'a> {
    pub erp_reference: &'a str,
    /// The sales order as the writer was sent it, if still kept: its lines are exactly
    /// what the ERP was given (the earlier snapshot through today's mapping may not be).
    pub order: Option<&'a pb::SalesOrder>,
    /// The earlier snapshot's bytes, if still stored.
    pub snapshot: Option<&'a [u8]>,
    /// Gross and tax the ledger recorded for it.
    pub gross_minor: Option<i64>,
    pub tax_minor: Option<i64>,
}

/// The amendment from the version in the ERP to the newer order.
pub fn amendment(
    tenant: &str,
    posted: &Posted<'_>,
    rules: &Rules,
    items: &dyn ItemMap,
    after: &SalesOrder,
    snapshot_hash: &str,
) -> pb::OrderAmended {
    // What the ERP was given: the posted order itself, else the earlier snapshot through
    // today's mapping (right unless the mapping changed since).
    let before: Option<(Vec<View>, pb::Totals)> = match posted.order {
        Some(order) => Some((posted_views(order), order.totals.unwrap_or_default())),
        None => posted
            .snapshot
            .and_then(|bytes| Snapshot::parse(bytes).ok())
            .map(|s| transform(&s, rules, items))
            .map(|o| (views(&o), totals(&o))),
    };
    let cancelled = after.release == ferry_domain::Release::Cancelled;
    let after_totals = if cancelled {
        pb::Totals::default()
    } else {
        totals(after)
    };
    let after_lines = if cancelled { Vec::new() } else { views(after) };
    let (gross, tax) = (
        posted.gross_minor.unwrap_or_default(),
        posted.tax_minor.unwrap_or_default(),
    );
    pb::OrderAmended {
        tenant: tenant.to_owned(),
        order_number: after.order_number,
        erp_reference: posted.erp_reference.to_owned(),
        currency: after.currency.clone(),
        previous_totals: Some(before.as_ref().map(|b| b.1).unwrap_or(pb::Totals {
            gross_minor: gross,
            tax_minor: tax,
            net_minor: gross - tax,
        })),
        totals: Some(after_totals),
        changes: before
            .as_ref()
            .map(|(b, _)| line_changes(b, &after_lines))
            .unwrap_or_default(),
        cancelled,
        snapshot_hash: snapshot_hash.to_owned(),
        lines_known: before.is_some(),
        // Set by the caller, which has the snapshot's message.
        order: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(id: i64, item: &str, q: i64) -> View {
        View {
            kind: pb::LineKind::Item,
            centra_line_id: Some(id),
            sku: Some(format!("SKU-{id}")),
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
        let d = line_changes(&before, &after);
        let summary: Vec<(i32, Option<&str>, &str, &str)> = d
            .iter()
            .map(|l| {
                (
                    l.change,
                    l.sku.as_deref(),
                    l.previous_erp_item.as_str(),
                    l.erp_item.as_str(),
                )
            })
            .collect();
        use pb::LineChangeKind::{Added, Changed, Removed};
        assert_eq!(
            summary,
            [
                (Changed as i32, Some("SKU-1"), "A", "A2"),
                (Removed as i32, Some("SKU-2"), "B", "B"),
                (Added as i32, Some("SKU-3"), "", "C"),
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
            a in proptest::collection::vec((0i64..20, 0usize..3, 1i64..5), 0..12),
            b in proptest::collection::vec((0i64..20, 0usize..3, 1i64..5), 0..12),
        ) {
            let lines = |v: &Vec<(i64, usize, i64)>| {
                let mut seen = std::collections::BTreeSet::new();
                v.iter()
                    .filter(|(id, _, _)| seen.insert(*id))
                    .map(|(id, item, q)| line(*id, ["A", "B", "C"][*item], *q))
                    .collect::<Vec<_>>()
            };
            let (before, after) = (lines(&a), lines(&b));
            prop_assert!(line_changes(&before, &before).is_empty());
            prop_assert_eq!(line_changes(&[], &after).len(), after.len());
            let sum = |v: &[View]| v.iter().map(|l| l.gross).sum::<i64>();
            let moved: i64 = line_changes(&before, &after)
                .iter()
                .map(|l| l.gross_minor - l.previous_gross_minor)
                .sum();
            prop_assert_eq!(moved, sum(&after) - sum(&before));
        }
    }
}
