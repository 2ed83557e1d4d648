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
use ferry_runtime::{ServiceBase, StreamKind};
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

/// The lines that differ, matched by (kind, Centra line, SKU).
pub fn changes(before: &SalesOrder, after: &SalesOrder) -> Vec<pb::LineChange> {
    let key = |l: &ferry_domain::OrderLine| (l.kind as u8, l.centra_line_id, l.sku.clone());
    let mut out = Vec::new();
    for b in &before.lines {
        let a = after.lines.iter().find(|a| key(a) == key(b));
        let (quantity, gross, tax) = a.map(|a| (a.quantity, a.gross, a.tax)).unwrap_or((0, 0, 0));
        if (quantity, gross, tax) != (b.quantity, b.gross, b.tax) {
            out.push(pb::LineChange {
                kind: kind(b.kind) as i32,
                centra_line_id: b.centra_line_id,
                sku: b.sku.clone(),
                erp_item: b.erp_item.clone().unwrap_or_default(),
                previous_quantity: b.quantity,
                quantity,
                previous_gross_minor: b.gross,
                gross_minor: gross,
                previous_tax_minor: b.tax,
                tax_minor: tax,
            });
        }
    }
    for a in after
        .lines
        .iter()
        .filter(|a| !before.lines.iter().any(|b| key(b) == key(a)))
    {
        out.push(pb::LineChange {
            kind: kind(a.kind) as i32,
            centra_line_id: a.centra_line_id,
            sku: a.sku.clone(),
            erp_item: a.erp_item.clone().unwrap_or_default(),
            previous_quantity: 0,
            quantity: a.quantity,
            previous_gross_minor: 0,
            gross_minor: a.gross,
            previous_tax_minor: 0,
            tax_minor: a.tax,
        });
    }
    out
}

/// What the ledger knows about the version in the ERP.
pub struct Posted<'a> {
    pub erp_reference: &'a str,
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
    let (earlier, erp_reference, known_totals) = (
        posted.snapshot,
        posted.erp_reference,
        (posted.gross_minor, posted.tax_minor),
    );
    let before = earlier
        .and_then(|bytes| Snapshot::parse(bytes).ok())
        .map(|s| transform(&s, rules, items));
    let cancelled = after.release == ferry_domain::Release::Cancelled;
    let after_totals = if cancelled {
        pb::Totals::default()
    } else {
        totals(after)
    };
    pb::OrderAmended {
        tenant: tenant.to_owned(),
        order_number: after.order_number,
        erp_reference: erp_reference.to_owned(),
        currency: after.currency.clone(),
        previous_totals: Some(before.as_ref().map(totals).unwrap_or(pb::Totals {
            gross_minor: known_totals.0.unwrap_or_default(),
            tax_minor: known_totals.1.unwrap_or_default(),
            net_minor: known_totals.0.unwrap_or_default() - known_totals.1.unwrap_or_default(),
        })),
        totals: Some(after_totals),
        changes: before
            .as_ref()
            .map(|b| {
                let mut emptied = after.clone();
                if cancelled {
                    emptied.lines.clear();
                }
                changes(b, &emptied)
            })
            .unwrap_or_default(),
        cancelled,
        snapshot_hash: snapshot_hash.to_owned(),
        lines_known: before.is_some(),
    }
}
