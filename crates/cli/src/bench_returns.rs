//! `ferry bench returns`: completed Centra returns to ERP credit notes, end to end (ADR 0037).
//!
//! N orders are posted and shipped (in Centra, untimed). Then one return per order — one
//! unit of its first shipment line, a quarter with the shipping refunded — is created and
//! completed in the Centra simulator as fast as it takes them, and the run is timed until
//! the ERP simulator holds N credit notes: webhooks and the Events queue → ingest (returns
//! and their orders read back) → transform (priced as posted) → erp-writer (priced against
//! earlier returns, recorded, credited). The baseline, measured first in the same run, is a
//! bare HTTP client making N credit notes in a second ERP simulator holding the same sales
//! orders, 64 at a time: what the ERP side alone allows.
//!
//! The last line is one JSON object.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use ferry_erp::{CreditNotes as _, CreditOutcome, PostCredit, PostLine};
use ferry_sim_centra::ops::ShippingRefund;
use futures::StreamExt as _;
use serde::Serialize;

use crate::stack::{LocalInfra, Stack, StackOptions, local_config};

#[derive(clap::Args, Debug)]
pub struct ReturnsArgs {
    /// Returns to credit (one per order).
    #[arg(long, default_value_t = 20_000)]
    pub returns: usize,
    /// Credit notes the baseline client sends at once.
    #[arg(long, default_value_t = 64)]
    pub baseline_in_flight: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    returns: usize,
    returns_per_sec: f64,
    baseline_credit_notes_per_sec: f64,
    ratio: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: usize,
    duplicate_credit_notes: usize,
    /// Credit notes Ferry sent again that the ERP recognised (a retry after a timeout).
    resent: u64,
    exceptions: usize,
    seconds: f64,
}

fn mix() -> ferry_sim_centra::OrderMix {
    ferry_sim_centra::OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        cancellation_pct: 0,
        ..Default::default()
    }
}

/// Ships every order whole in Centra; returns (order, shipment, first shipment line, units).
fn ship_in_centra(stack: &Stack, orders: &[i64]) -> anyhow::Result<Vec<(i64, i64, i64)>> {
    let mut out = Vec::with_capacity(orders.len());
    for n in orders {
        let shipped = stack.centra.state.transact(|w| {
            w.with_order(*n, |order, ops| {
                let lines: Vec<(i64, i64)> = order
                    .lines
                    .iter()
                    .filter(|l| l.quantity > 0)
                    .map(|l| (l.id, l.quantity))
                    .collect();
                let id = ops.create_shipment(order, &lines, true, true, None, None)?;
                ops.complete_shipment(order, id, Utc::now(), None, false, None)?;
                let line = ops
                    .shipments
                    .get(&id)
                    .and_then(|s| s.lines.first())
                    .map(|l| l.id);
                Ok((id, line))
            })
        });
        let (shipment, line) = shipped.map_err(|e| anyhow::anyhow!("shipping {n}: {e:?}"))?;
        out.push((*n, shipment, line.context("a shipment without lines")?));
    }
    Ok(out)
}

/// The baseline: the same sales orders in a second ERP simulator, one credit note each from
/// a bare client, `in_flight` at a time.
async fn baseline(stack: &Stack, in_flight: usize) -> anyhow::Result<f64> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let erp = ferry_sim_erp::ErpSim::start(([127, 0, 0, 1], 0).into(), shutdown.clone()).await?;
    let orders = stack.erp.orders();
    erp.import(orders.iter().map(|o| ferry_sim_erp::NewSalesOrder {
        external_ref: o.external_ref.clone(),
        currency: o.currency.clone(),
        order_date: String::new(),
        customer: serde_json::Value::Null,
        delivery: None,
        lines: o.lines.clone(),
        payment_term: None,
        carrier: None,
        sales_channel: None,
    }));
    let references: std::collections::HashMap<String, String> = erp
        .orders()
        .into_iter()
        .map(|o| (o.external_ref, o.reference))
        .collect();
    let client = ferry_erp_http::HttpErp::new(erp.url(), None, Duration::from_secs(10));
    let credits: Vec<PostCredit> = orders
        .iter()
        .filter_map(|o| {
            let line = o.lines.iter().find(|l| l.kind == "item")?;
            let unit = |v: i64| v / line.quantity.max(1);
            Some(PostCredit {
                tenant: "baseline".into(),
                external_ref: format!("{}-R1", o.external_ref),
                order_ref: o.external_ref.clone(),
                order_erp_reference: references.get(&o.external_ref)?.clone(),
                return_id: 1,
                currency: o.currency.clone(),
                date: String::new(),
                lines: vec![PostLine {
                    kind: ferry_erp::LineKind::Item,
                    erp_item: line.erp_item.clone(),
                    sku: line.sku.clone(),
                    centra_line_id: line.centra_line_id,
                    quantity: 1,
                    tax_rate: line.tax_rate.clone(),
                    tax_code: None,
                    gross_minor: unit(line.gross_minor),
                    tax_minor: unit(line.tax_minor),
                    net_minor: unit(line.gross_minor) - unit(line.tax_minor),
                    description: line.description.clone(),
                }],
                gross_minor: unit(line.gross_minor),
                tax_minor: unit(line.tax_minor),
                restock: true,
            })
        })
        .collect();
    let started = Instant::now();
    let answers: Vec<_> = futures::stream::iter(&credits)
        .map(|c| client.create_credit_note(c))
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let credited = answers
        .iter()
        .filter(|a| matches!(a, Ok(CreditOutcome::Credited(_))))
        .count();
    anyhow::ensure!(
        credited == credits.len(),
        "the baseline credited {credited} of {}",
        credits.len()
    );
    shutdown.cancel();
    Ok(credits.len() as f64 / seconds)
}

pub async fn returns(args: ReturnsArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-returns-{}", std::process::id()));
    let mut infra = LocalInfra::start(dir.clone()).await?;
    let mut config = local_config(&infra)?;
    config.nats.prefix = "benchr".to_owned();
    config.telemetry.log_filter = "warn".to_owned();
    let options = StackOptions {
        tenant: "benchr".to_owned(),
        centra_requests_per_10s: 100_000,
        centra_mutations: (1_000_000, 100_000_000),
        centra_events: true,
        ..StackOptions::default()
    };
    let stack = Stack::start(config, options)
        .await
        .context("starting the stack")?;
    let store = ferry_store::Store::connect(&stack.config.database).await?;
    let n = args.returns;
    let orders = stack.centra.generate(n, &mix());
    let within = Duration::from_secs(120 + n as u64 / 50);
    crate::bench_writer::wait_for(&store, stack.tenant(), "posted", n, within).await?;
    eprintln!("returns: {n} orders posted; shipping them in Centra");
    let shipped = ship_in_centra(&stack, &orders)?;
    // The shipments' order updates flow through ingest and the transform (nothing to
    // post): let them pass before the timed part.
    tokio::time::sleep(Duration::from_secs(5 + n as u64 / 4_000)).await;

    let baseline = baseline(&stack, args.baseline_in_flight).await?;
    eprintln!("baseline: {baseline:.0} credit notes/s");

    let replays_before = stack.erp.stats().idempotent_replays;
    let started = Instant::now();
    let mut completed_at = std::collections::HashMap::with_capacity(n);
    for (i, (order, shipment, line)) in shipped.iter().enumerate() {
        let refund = if i % 4 == 0 {
            ShippingRefund::FromShipment {
                order_shipping: stack
                    .centra
                    .state
                    .order(*order)
                    .map(|o| o.shipping)
                    .unwrap_or_default(),
            }
        } else {
            ShippingRefund::None
        };
        let id = stack
            .centra
            .state
            .transact(|w| {
                let id = w
                    .ops
                    .create_return(*shipment, &[(*line, 1)], true, refund, None)?;
                let placed = w.order(*order)?.clone();
                w.ops.complete_return(&placed, id, false)?;
                Ok(id)
            })
            .map_err(|e| anyhow::anyhow!("return of {order}: {e:?}"))?;
        completed_at.insert(format!("{order}-R{id}"), Utc::now());
    }
    eprintln!(
        "returns: {n} completed in Centra in {:.1} s; waiting for the credit notes",
        started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(300 + n as u64 / 20);
    while stack.erp.stats().credit_notes < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let notes = stack.erp.credit_notes();
    let distinct: HashSet<&str> = notes.iter().map(|c| c.external_ref.as_str()).collect();
    let mut latencies: Vec<f64> = notes
        .iter()
        .filter_map(|c| {
            let done = completed_at.get(&c.external_ref)?;
            let at = chrono::DateTime::parse_from_rfc3339(&c.created_at).ok()?;
            Some((at.with_timezone(&Utc) - *done).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let per_sec = n as f64 / seconds;
    let report = Report {
        returns: n,
        returns_per_sec: (per_sec * 10.0).round() / 10.0,
        baseline_credit_notes_per_sec: (baseline * 10.0).round() / 10.0,
        ratio: (per_sec / baseline * 100.0).round() / 100.0,
        p50_ms: pct(0.5).round(),
        p99_ms: pct(0.99).round(),
        lost: completed_at
            .keys()
            .filter(|r| !distinct.contains(r.as_str()))
            .count(),
        duplicate_credit_notes: notes.len() - distinct.len(),
        resent: stack.erp.stats().idempotent_replays - replays_before,
        exceptions: store.open_exceptions(stack.tenant()).await?.len(),
        seconds: (seconds * 10.0).round() / 10.0,
    };
    stack.shutdown().await;
    infra.stop();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
