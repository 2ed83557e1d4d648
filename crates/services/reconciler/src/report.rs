//! The month-end report: per currency, what Centra charged beside what the ERP holds and
//! what Ferry posted, how complete and accurate the period is day by day, and every
//! variance with its cause, owner and money. Built only from the checks as recorded, so the
//! same period gives the same figures when regenerated.

mod html;

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use ferry_store::reconciliation::{CheckedOrder, UnexplainedDocument};
use ferry_store::stock_drift::StockDriftRow;
use serde::Serialize;

use crate::compare::{Cause, Variance};
use crate::figures::{Figures, RateFigures};
use crate::timeliness::{Step, Timing};

pub use html::{days_chart, html, step_words};

/// The month-end report of `tenant` for `period`, from the checks as recorded (the CLI's
/// `ferry reconcile report` and the console's download).
pub async fn month_report(
    store: &ferry_store::Store,
    tenant: &str,
    period: Period,
) -> Result<Report, ferry_store::StoreError> {
    let orders = store
        .checked_orders(tenant, period.first, period.last)
        .await?;
    let unexplained = store
        .unexplained_documents(tenant, period.first, period.last)
        .await?;
    // Drift first found in the month (UTC days), cleared since or not.
    let start = period.first.and_time(chrono::NaiveTime::MIN).and_utc();
    let end = (period.last + chrono::Duration::days(1))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let stock = store.stock_drift_found(tenant, start, end).await?;
    let refunds = store.refunds(tenant, start, end).await?;
    let mut report = Report::build(tenant, period, &orders, &unexplained, &stock);
    report.add_refunds(&refunds);
    Ok(report)
}

/// A calendar month, `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a month: write it as YYYY-MM, e.g. 2026-11")]
pub struct BadPeriod(String);

impl Period {
    pub fn month(text: &str) -> Result<Period, BadPeriod> {
        let bad = || BadPeriod(text.to_owned());
        let first =
            NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map_err(|_| bad())?;
        let next = if first.month() == 12 {
            NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
        };
        let last = next.and_then(|d| d.pred_opt()).ok_or_else(bad)?;
        Ok(Period { first, last })
    }

    pub fn name(&self) -> String {
        self.first.format("%Y-%m").to_string()
    }
}

/// The report of one tenant's period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub tenant: String,
    pub period: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub standing: Standing,
    pub currencies: Vec<CurrencyFigures>,
    /// Completeness and accuracy day by day (by Centra's order date).
    pub days: Vec<DayStanding>,
    pub by_cause: Vec<CauseTotal>,
    /// How long each step took over the period's orders, and how many were late.
    pub timeliness: Vec<StepTimes>,
    /// Stock drift first found in the period (UTC days), as first found, and when it
    /// cleared if it has.
    pub stock_drift: Vec<StockDrift>,
    /// Every variance of the period, orders first (by number), then ERP documents no
    /// Centra order explains (by reference).
    pub variances: Vec<Variance>,
}

/// How many orders were checked and how many are complete and accurate. Percentages are
/// of the checked orders, to two decimals (100 when none was checked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub checked: u64,
    pub complete: u64,
    pub accurate: u64,
    /// Inside their grace, or held in Centra, at their last check.
    pub pending: u64,
    pub complete_pct: String,
    pub accurate_pct: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayStanding {
    pub day: Option<NaiveDate>,
    pub checked: u64,
    pub complete: u64,
    pub accurate: u64,
}

/// Minor units of `currency` throughout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurrencyFigures {
    pub currency: String,
    pub centra: CentraTotals,
    pub erp: ErpTotals,
    pub ledger: LedgerTotals,
    /// The returns Ferry credited in the ERP in the period (by when they were credited);
    /// `None` when it credited none.
    pub refunds: Option<Refunds>,
}

/// Returns credited in the ERP, minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refunds {
    pub returns: u64,
    pub gross: i64,
    pub tax: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CentraTotals {
    /// Orders not cancelled.
    pub orders: u64,
    pub cancelled: u64,
    pub gross: i64,
    pub net: i64,
    pub tax: i64,
    pub tax_by_rate: BTreeMap<String, RateFigures>,
    pub shipping: i64,
    pub discounts: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErpTotals {
    /// Orders with at least one active document.
    pub orders: u64,
    pub documents: u64,
    pub gross: i64,
    pub tax: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerTotals {
    /// Orders Ferry recorded as posted.
    pub orders: u64,
    pub gross: i64,
    pub tax: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CauseTotal {
    pub cause: Cause,
    pub owner: ferry_domain::Owner,
    pub count: u64,
    /// Money at stake by currency.
    pub money: BTreeMap<String, i64>,
}

/// One SKU's drift as the stock check first found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockDrift {
    pub warehouse: i64,
    pub sku: String,
    pub expected: i64,
    pub centra: i64,
    pub found_at: String,
    pub cleared_at: Option<String>,
}

impl From<&StockDriftRow> for StockDrift {
    fn from(r: &StockDriftRow) -> Self {
        let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        StockDrift {
            warehouse: r.warehouse,
            sku: r.sku.clone(),
            expected: r.expected,
            centra: r.centra,
            found_at: at(r.found_at),
            cleared_at: r.cleared_at.map(at),
        }
    }
}

/// One step's times over a period: the orders it was timed for, how many were late
/// (including those still not done past the target), and the median and slowest times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepTimes {
    pub step: Step,
    pub timed: u64,
    pub late: u64,
    pub median_s: Option<i64>,
    pub slowest_s: Option<i64>,
}

impl StepTimes {
    fn of(step: Step, mut seconds: Vec<i64>, late: u64) -> StepTimes {
        seconds.sort_unstable();
        StepTimes {
            step,
            timed: seconds.len() as u64,
            late,
            // The lower median: an order's own time, never an average of two.
            median_s: seconds.get(seconds.len().saturating_sub(1) / 2).copied(),
            slowest_s: seconds.last().copied(),
        }
    }
}

/// Percent of `part` in `whole` to two decimals, exactly (integer arithmetic, half up).
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "100.00".into();
    }
    let basis_points =
        (u128::from(part) * 10_000 * 2 + u128::from(whole)) / (2 * u128::from(whole));
    format!("{}.{:02}", basis_points / 100, basis_points % 100)
}

impl Report {
    /// The report of `period` from the recorded checks of its orders, the unexplained ERP
    /// documents dated in it and the stock drift first found in it.
    pub fn build(
        tenant: &str,
        period: Period,
        orders: &[CheckedOrder],
        unexplained: &[UnexplainedDocument],
        stock: &[StockDriftRow],
    ) -> Report {
        let mut currencies: BTreeMap<String, CurrencyFigures> = BTreeMap::new();
        let mut days: BTreeMap<Option<NaiveDate>, DayStanding> = BTreeMap::new();
        let mut standing = Standing::default();
        let mut variances = Vec::new();
        let mut seconds: BTreeMap<Step, Vec<i64>> = BTreeMap::new();
        let mut late: BTreeMap<Step, u64> = BTreeMap::new();
        for order in orders {
            let found: Vec<Variance> =
                serde_json::from_value(order.variances.clone()).unwrap_or_default();
            if order.verdict == "pending" {
                standing.pending += 1;
            } else {
                let complete = !found.iter().any(|v| v.cause.is_completeness());
                let accurate = order.verdict == "reconciled";
                let day = days.entry(order.order_date).or_insert_with(|| DayStanding {
                    day: order.order_date,
                    ..DayStanding::default()
                });
                for s in [&mut day.checked, &mut standing.checked] {
                    *s += 1;
                }
                if complete {
                    day.complete += 1;
                    standing.complete += 1;
                }
                if accurate {
                    day.accurate += 1;
                    standing.accurate += 1;
                }
            }
            if let Ok(figures) = serde_json::from_value::<Figures>(order.figures.clone()) {
                let entry =
                    currencies
                        .entry(order.currency.clone())
                        .or_insert_with(|| CurrencyFigures {
                            currency: order.currency.clone(),
                            ..CurrencyFigures::default()
                        });
                add(entry, &figures);
                time(&figures.timing, &mut seconds, &mut late);
            }
            variances.extend(found);
        }
        for document in unexplained {
            if let Ok(v) = serde_json::from_value::<Variance>(document.variance.clone()) {
                variances.push(v);
            }
        }
        let mut by_cause: BTreeMap<Cause, CauseTotal> = BTreeMap::new();
        for v in &variances {
            let total = by_cause.entry(v.cause).or_insert_with(|| CauseTotal {
                cause: v.cause,
                owner: v.owner,
                count: 0,
                money: BTreeMap::new(),
            });
            total.count += 1;
            *total.money.entry(v.currency.clone()).or_default() += v.money_minor;
        }
        standing.complete_pct = percent(standing.complete, standing.checked);
        standing.accurate_pct = percent(standing.accurate, standing.checked);
        Report {
            tenant: tenant.to_owned(),
            period: period.name(),
            first_day: period.first,
            last_day: period.last,
            standing,
            currencies: currencies.into_values().collect(),
            days: days.into_values().collect(),
            by_cause: by_cause.into_values().collect(),
            timeliness: Step::ALL
                .iter()
                .map(|&step| {
                    StepTimes::of(
                        step,
                        seconds.remove(&step).unwrap_or_default(),
                        late.get(&step).copied().unwrap_or(0),
                    )
                })
                .collect(),
            stock_drift: stock.iter().map(StockDrift::from).collect(),
            variances,
        }
    }

    /// The returns credited in the period, per currency: each currency's refunds, and its
    /// net revenue (posted less refunded) in the figures.
    pub fn add_refunds(&mut self, credited: &[ferry_store::returns::Refunds]) {
        for r in credited {
            let entry = match self
                .currencies
                .iter_mut()
                .find(|c| c.currency == r.currency)
            {
                Some(entry) => entry,
                None => {
                    self.currencies.push(CurrencyFigures {
                        currency: r.currency.clone(),
                        ..CurrencyFigures::default()
                    });
                    self.currencies.sort_by(|a, b| a.currency.cmp(&b.currency));
                    match self
                        .currencies
                        .iter_mut()
                        .find(|c| c.currency == r.currency)
                    {
                        Some(entry) => entry,
                        None => continue,
                    }
                }
            };
            entry.refunds = Some(Refunds {
                returns: u64::try_from(r.returns).unwrap_or(0),
                gross: r.gross_minor,
                tax: r.tax_minor,
            });
        }
    }

    /// One CSV table a spreadsheet filters: `figure` rows (per currency, Centra beside the
    /// ERP and the ledger) and `variance` rows (every variance).
    pub fn csv(&self) -> Result<String, csv::Error> {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record([
            "section",
            "currency",
            "figure",
            "centra_minor",
            "erp_minor",
            "ledger_minor",
            "order",
            "cause",
            "owner",
            "money_minor",
            "erp_reference",
            "detail",
        ])?;
        for c in &self.currencies {
            for row in figure_rows(c) {
                let text = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
                out.write_record([
                    "figure",
                    c.currency.as_str(),
                    row.name.as_str(),
                    &text(row.centra),
                    &text(row.erp),
                    &text(row.ledger),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ])?;
            }
        }
        for t in &self.timeliness {
            let text = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
            out.write_record([
                "timeliness",
                "",
                t.step.as_str(),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                &format!(
                    "timed {}; late {}; median {} s; slowest {} s",
                    t.timed,
                    t.late,
                    text(t.median_s),
                    text(t.slowest_s)
                ),
            ])?;
        }
        for d in &self.stock_drift {
            out.write_record([
                "stock_drift",
                "",
                d.sku.as_str(),
                "",
                "",
                "",
                "",
                Cause::StockDrift.as_str(),
                Cause::StockDrift.owner().as_str(),
                "",
                &format!("{}:{}", d.warehouse, d.sku),
                &format!(
                    "Centra warehouse {}: Centra offered {}, Ferry expected {}; found {}{}",
                    d.warehouse,
                    d.centra,
                    d.expected,
                    d.found_at,
                    d.cleared_at
                        .as_deref()
                        .map(|c| format!(", cleared {c}"))
                        .unwrap_or_default()
                ),
            ])?;
        }
        for v in &self.variances {
            out.write_record([
                "variance",
                v.currency.as_str(),
                "",
                "",
                "",
                "",
                &order_text(v),
                v.cause.as_str(),
                v.owner.as_str(),
                &v.money_minor.to_string(),
                v.erp_reference.as_deref().unwrap_or(""),
                v.detail.as_str(),
            ])?;
        }
        let bytes = out.into_inner().map_err(|e| e.into_error())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn time(t: &Timing, seconds: &mut BTreeMap<Step, Vec<i64>>, late: &mut BTreeMap<Step, u64>) {
    for (step, took) in [
        (Step::Posted, t.posted_s),
        (Step::Shipped, t.shipped_s),
        (Step::Email, t.email_s),
        (Step::Captured, t.captured_s),
    ] {
        if let Some(took) = took {
            seconds.entry(step).or_default().push(took);
        }
    }
    for step in &t.late {
        *late.entry(*step).or_default() += 1;
    }
}

/// The order a variance concerns, blank for an ERP document no order explains.
fn order_text(v: &Variance) -> String {
    if v.cause.concerns_order() {
        v.order.to_string()
    } else {
        String::new()
    }
}

fn add(to: &mut CurrencyFigures, f: &Figures) {
    let c = &mut to.centra;
    if f.centra.cancelled {
        c.cancelled += 1;
    } else {
        c.orders += 1;
        c.gross += f.centra.gross;
        c.net += f.centra.net;
        c.tax += f.centra.tax;
        c.shipping += f.centra.shipping;
        c.discounts += f.centra.discounts;
        for (rate, r) in &f.centra.tax_by_rate {
            let sum = c.tax_by_rate.entry(rate.clone()).or_default();
            sum.net += r.net;
            sum.tax += r.tax;
        }
    }
    if let Some(erp) = &f.erp {
        to.erp.orders += 1;
        to.erp.documents += u64::try_from(erp.documents).unwrap_or(0);
        to.erp.gross += erp.gross;
        to.erp.tax += erp.tax;
    }
    if let Some(ledger) = &f.ledger {
        to.ledger.orders += 1;
        to.ledger.gross += ledger.gross;
        to.ledger.tax += ledger.tax;
    }
}

/// One figure compared across the sources; `None` where a source has no such figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureRow {
    pub name: String,
    pub centra: Option<i64>,
    pub erp: Option<i64>,
    pub ledger: Option<i64>,
    /// A count of orders or documents rather than money.
    pub count: bool,
}

/// The figures of one currency, in the order the report shows them.
pub fn figure_rows(c: &CurrencyFigures) -> Vec<FigureRow> {
    let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
    let row = |name: &str, centra, erp, ledger, count| FigureRow {
        name: name.to_owned(),
        centra,
        erp,
        ledger,
        count,
    };
    let mut rows = vec![
        row(
            "orders",
            count(c.centra.orders),
            count(c.erp.orders),
            count(c.ledger.orders),
            true,
        ),
        row("erp_documents", None, count(c.erp.documents), None, true),
        row(
            "cancelled_orders",
            count(c.centra.cancelled),
            None,
            None,
            true,
        ),
        row(
            "gross",
            Some(c.centra.gross),
            Some(c.erp.gross),
            Some(c.ledger.gross),
            false,
        ),
        row(
            "net",
            Some(c.centra.net),
            Some(c.erp.gross - c.erp.tax),
            Some(c.ledger.gross - c.ledger.tax),
            false,
        ),
        row(
            "tax",
            Some(c.centra.tax),
            Some(c.erp.tax),
            Some(c.ledger.tax),
            false,
        ),
    ];
    for (rate, r) in &c.centra.tax_by_rate {
        rows.push(row(
            &format!("tax_at_{rate}_pct"),
            Some(r.tax),
            None,
            None,
            false,
        ));
        rows.push(row(
            &format!("net_at_{rate}_pct"),
            Some(r.net),
            None,
            None,
            false,
        ));
    }
    if let Some(r) = &c.refunds {
        // What Ferry credited for returns, and what the period leaves: posted less refunded.
        rows.push(row("returns_credited", None, None, count(r.returns), true));
        rows.push(row("refunds", None, None, Some(r.gross), false));
        rows.push(row("refunded_tax", None, None, Some(r.tax), false));
        rows.push(row(
            "net_revenue",
            None,
            None,
            Some(c.ledger.gross - c.ledger.tax - (r.gross - r.tax)),
            false,
        ));
    }
    rows.push(row("shipping", Some(c.centra.shipping), None, None, false));
    rows.push(row(
        "discounts",
        Some(c.centra.discounts),
        None,
        None,
        false,
    ));
    rows
}

#[cfg(test)]
mod tests;
