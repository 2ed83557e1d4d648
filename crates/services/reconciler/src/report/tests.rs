use std::collections::BTreeMap;

use ferry_domain::Owner;
use proptest::prelude::*;

use super::*;
use crate::figures::{CentraFigures, ErpFigures, LedgerFigures};
use crate::timeliness::{Step, Timing};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).expect("a day of November")
}

fn variance(order: i64, cause: Cause, money: i64, currency: &str) -> Variance {
    Variance {
        order,
        cause,
        owner: cause.owner(),
        money_minor: money,
        currency: currency.into(),
        detail: format!("line <JACKET> differs on {order}"),
        erp_reference: Some(format!("SO-{order}")),
    }
}

/// An order of `gross` (25 % tax inside) as Centra charged it, the ERP holding `erp_gross`.
fn checked(
    order: i64,
    on: u32,
    currency: &str,
    gross: i64,
    erp_gross: Option<i64>,
    found: Vec<Variance>,
) -> CheckedOrder {
    let tax = gross / 5;
    let figures = Figures {
        centra: CentraFigures {
            gross,
            net: gross - tax,
            tax,
            shipping: 4_900,
            discounts: 1_000,
            tax_by_rate: BTreeMap::from([(
                "25".to_owned(),
                RateFigures {
                    net: gross - tax,
                    tax,
                },
            )]),
            cancelled: false,
        },
        erp: erp_gross.map(|g| ErpFigures {
            documents: 1,
            gross: g,
            tax: g / 5,
        }),
        ledger: Some(LedgerFigures { gross, tax }),
        timing: Timing {
            posted_s: Some(order % 100),
            late: if order % 2 == 0 {
                vec![Step::Posted]
            } else {
                vec![]
            },
            ..Timing::default()
        },
    };
    CheckedOrder {
        order_number: order,
        verdict: if found.is_empty() {
            "reconciled"
        } else {
            "variance"
        }
        .into(),
        causes: found.iter().map(|v| v.cause.as_str().to_owned()).collect(),
        currency: currency.into(),
        order_date: Some(day(on)),
        figures: serde_json::to_value(&figures).expect("figures"),
        variances: serde_json::to_value(&found).expect("variances"),
    }
}

fn november() -> (Vec<CheckedOrder>, Vec<UnexplainedDocument>) {
    let orders = vec![
        checked(1, 1, "SEK", 100_000, Some(100_000), vec![]),
        checked(
            2,
            1,
            "SEK",
            50_000,
            None,
            vec![variance(2, Cause::Missing, 50_000, "SEK")],
        ),
        checked(
            3,
            2,
            "SEK",
            20_000,
            Some(19_000),
            vec![variance(3, Cause::AlteredInErp, 1_000, "SEK")],
        ),
        checked(4, 2, "EUR", 9_990, Some(9_990), vec![]),
        CheckedOrder {
            verdict: "pending".into(),
            figures: serde_json::json!({}),
            ..checked(5, 30, "EUR", 1, None, vec![])
        },
    ];
    let unexplained = vec![UnexplainedDocument {
        erp_reference: "SO-9".into(),
        document_date: Some(day(3)),
        currency: "SEK".into(),
        gross_minor: 7_700,
        variance: serde_json::to_value(variance(0, Cause::Unexplained, 7_700, "SEK"))
            .expect("variance"),
    }];
    (orders, unexplained)
}

fn report() -> Report {
    let (orders, unexplained) = november();
    Report::build(
        "acme",
        Period::month("2026-11").expect("period"),
        &orders,
        &unexplained,
        &[stock_drift()],
    )
}

#[test]
fn a_period_is_a_calendar_month() {
    let nov = Period::month("2026-11").expect("november");
    assert_eq!((nov.first, nov.last), (day(1), day(30)));
    let dec = Period::month("2026-12").expect("december");
    assert_eq!(
        dec.last,
        NaiveDate::from_ymd_opt(2026, 12, 31).expect("day")
    );
    assert_eq!(
        Period::month("2028-02")
            .expect("feb")
            .last
            .format("%d")
            .to_string(),
        "29"
    );
    assert!(Period::month("2026-13").is_err());
    assert!(Period::month("November").is_err());
    assert_eq!(nov.name(), "2026-11");
}

#[test]
fn percentages_are_exact_to_two_decimals() {
    assert_eq!(percent(0, 0), "100.00");
    assert_eq!(percent(2, 3), "66.67");
    assert_eq!(percent(1, 3), "33.33");
    assert_eq!(percent(999_999, 1_000_000), "100.00");
    assert_eq!(percent(999_949, 1_000_000), "99.99");
    assert_eq!(percent(7, 7), "100.00");
}

#[test]
fn each_currency_adds_up_its_own_orders_from_each_source() {
    let r = report();
    assert_eq!(r.currencies.len(), 2);
    let sek = r
        .currencies
        .iter()
        .find(|c| c.currency == "SEK")
        .expect("SEK");
    assert_eq!(sek.centra.orders, 3);
    assert_eq!(sek.centra.gross, 170_000);
    assert_eq!(sek.centra.tax, 34_000);
    assert_eq!(sek.centra.tax_by_rate["25"].tax, 34_000);
    assert_eq!(sek.centra.shipping, 3 * 4_900);
    assert_eq!((sek.erp.orders, sek.erp.gross), (2, 119_000));
    assert_eq!((sek.ledger.orders, sek.ledger.gross), (3, 170_000));
    assert_eq!(sek.refunds, None);
    // A pending order without figures adds nothing, and is counted as pending.
    let eur = r
        .currencies
        .iter()
        .find(|c| c.currency == "EUR")
        .expect("EUR");
    assert_eq!((eur.centra.orders, eur.centra.gross), (1, 9_990));
    assert_eq!(r.standing.pending, 1);
}

#[test]
fn refunds_credited_make_net_revenue_per_currency() {
    let mut r = report();
    r.add_refunds(&[
        ferry_store::returns::Refunds {
            currency: "SEK".into(),
            returns: 2,
            gross_minor: 25_000,
            tax_minor: 5_000,
        },
        ferry_store::returns::Refunds {
            currency: "NOK".into(),
            returns: 1,
            gross_minor: 1_250,
            tax_minor: 250,
        },
    ]);
    let sek = r
        .currencies
        .iter()
        .find(|c| c.currency == "SEK")
        .expect("SEK");
    let rows = figure_rows(sek);
    let ledger = |name: &str| {
        rows.iter()
            .find(|row| row.name == name)
            .and_then(|row| row.ledger)
            .unwrap_or_else(|| panic!("row {name}"))
    };
    assert_eq!(ledger("returns_credited"), 2);
    assert_eq!(ledger("refunds"), 25_000);
    assert_eq!(ledger("refunded_tax"), 5_000);
    // Posted 170,000 with 34,000 tax; refunded 25,000 with 5,000: net 136,000 − 20,000.
    assert_eq!(ledger("net_revenue"), 116_000);
    // A currency with returns but no order checked this month still shows its refunds.
    let codes: Vec<&str> = r.currencies.iter().map(|c| c.currency.as_str()).collect();
    assert_eq!(codes, ["EUR", "NOK", "SEK"]);
    let eur = r
        .currencies
        .iter()
        .find(|c| c.currency == "EUR")
        .expect("EUR");
    assert_eq!(eur.refunds, None);
    assert!(!figure_rows(eur).iter().any(|row| row.name == "net_revenue"));
    let page = html(&r);
    assert!(page.contains("net revenue"), "the page shows net revenue");
    assert!(page.contains("no return credited by Ferry in this period"));
    assert!(r.csv().expect("csv").contains("net_revenue"));
}

#[test]
fn completeness_and_accuracy_count_checked_orders_by_day() {
    let r = report();
    assert_eq!(
        (r.standing.checked, r.standing.complete, r.standing.accurate),
        (4, 3, 2)
    );
    assert_eq!(r.standing.complete_pct, "75.00");
    assert_eq!(r.standing.accurate_pct, "50.00");
    let first = &r.days[0];
    assert_eq!(
        (first.day, first.checked, first.complete, first.accurate),
        (Some(day(1)), 2, 1, 1)
    );
}

#[test]
fn every_variance_is_listed_with_its_cause_owner_and_money() {
    let r = report();
    let causes: Vec<(Cause, u64)> = r.by_cause.iter().map(|c| (c.cause, c.count)).collect();
    assert_eq!(
        causes,
        vec![
            (Cause::Missing, 1),
            (Cause::Unexplained, 1),
            (Cause::AlteredInErp, 1)
        ]
    );
    let unexplained = r
        .by_cause
        .iter()
        .find(|c| c.cause == Cause::Unexplained)
        .expect("unexplained");
    assert_eq!(unexplained.owner, Owner::Finance);
    assert_eq!(unexplained.money["SEK"], 7_700);
    assert_eq!(r.variances.len(), 3);
}

#[test]
fn the_same_records_give_the_same_report() {
    assert_eq!(report(), report());
    assert_eq!(html(&report()), html(&report()));
}

#[test]
fn the_csv_is_one_table_of_figures_and_variances() {
    let csv = report().csv().expect("csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "section,currency,figure,centra_minor,erp_minor,ledger_minor,order,cause,owner,money_minor,erp_reference,detail"
        )
    );
    assert!(csv.contains("figure,SEK,gross,170000,119000,170000,"));
    assert!(csv.contains("variance,SEK,,,,,3,altered_in_erp,finance,1000,SO-3,"));
    // An unexplained document concerns no order.
    assert!(csv.contains("variance,SEK,,,,,,unexplained,finance,7700,SO-0,"));
}

#[test]
fn the_html_is_self_contained_and_escapes_what_it_shows() {
    let page = html(&report());
    assert!(page.starts_with("<!doctype html>"));
    assert!(!page.contains("<script"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains("line &lt;JACKET&gt; differs"));
    assert!(page.contains("75.00 %"));
    assert_eq!(page.matches("<svg").count(), 2);
}

proptest! {
    #[test]
    fn a_percentage_lies_between_its_neighbours(whole in 1u64..10_000_000, part_seed in 0u64..10_000_000) {
        let part = part_seed % (whole + 1);
        let p: f64 = percent(part, whole).parse().expect("a number");
        let exact = part as f64 * 100.0 / whole as f64;
        prop_assert!((p - exact).abs() <= 0.005 + 1e-9);
        prop_assert!((0.0..=100.0).contains(&p));
    }
}

#[test]
fn timeliness_counts_each_step_over_the_period() {
    let r = report();
    let posted = r
        .timeliness
        .iter()
        .find(|t| t.step == Step::Posted)
        .expect("posted");
    // Orders 1–4 posted after 1–4 s (the pending one has no figures); 2 and 4 were late.
    assert_eq!(
        (posted.timed, posted.late, posted.median_s, posted.slowest_s),
        (4, 2, Some(2), Some(4))
    );
    let shipped = r
        .timeliness
        .iter()
        .find(|t| t.step == Step::Shipped)
        .expect("shipped");
    assert_eq!(
        (shipped.timed, shipped.late, shipped.median_s),
        (0, 0, None)
    );
    assert_eq!(r.timeliness.len(), Step::ALL.len());
    let page = html(&r);
    assert!(page.contains("Centra accepted → in the ERP"), "{page}");
    let csv = r.csv().expect("csv");
    assert!(
        csv.contains("timeliness,,posted,,,,,,,,,timed 4; late 2; median 2 s; slowest 4 s"),
        "{csv}"
    );
}

fn stock_drift() -> ferry_store::stock_drift::StockDriftRow {
    use chrono::TimeZone;
    let at = |d| {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, d, 8, 0, 0)
            .single()
            .expect("time")
    };
    ferry_store::stock_drift::StockDriftRow {
        warehouse: 1,
        sku: "JACKET-<M>".into(),
        expected: 10,
        centra: 25,
        found_at: at(4),
        last_expected: 10,
        last_centra: 30,
        cleared_at: Some(at(5)),
    }
}

#[test]
fn stock_drift_is_listed_as_first_found_in_every_format() {
    let r = report();
    assert_eq!(r.stock_drift.len(), 1);
    let d = &r.stock_drift[0];
    assert_eq!(
        (d.expected, d.centra, d.cleared_at.as_deref()),
        (10, 25, Some("2026-11-05 08:00 UTC"))
    );
    let page = html(&r);
    assert!(page.contains("JACKET-&lt;M&gt;"), "escaped: {page}");
    assert!(page.contains("Stock drift found in the period"));
    let csv = r.csv().expect("csv");
    assert!(
        csv.contains("stock_drift,,JACKET-<M>,,,,,stock_drift,operations,,1:JACKET-<M>,"),
        "{csv}"
    );
}
