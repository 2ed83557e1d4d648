//! The reconciler service: per tenant, a feed that takes the orders due a check (ADR 0028),
//! reads each again from Centra (within the reconciler's share of the tenant's Centra quota)
//! and from the ERP (its documents read back), judges it, and records the verdict. Runs are
//! incremental and resumable: the cursor is the last order number checked, and a verdict
//! replaces the previous one, so a pass repeated after a crash counts nothing twice.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use ferry_domain::ExceptionKind;
use ferry_erp::{Connectors, ReadBack};
use ferry_platform::Platform;
use ferry_runtime::{ExceptionSink, Feed, FeedError, FeedSpec, Pass};
use ferry_store::Store;
use ferry_store::reconciliation::{Due, UnexplainedDocument};

use crate::check::{Checker, count_variance, span};
use crate::compare::{Cause, Variance};
use crate::figures::order_day;
use crate::stock::{STOCK_PAGE, StockCheck};
use crate::tell::exception;

pub const SERVICE: &str = "reconciler";
/// The feed that checks orders due a check.
pub const CHECK_FEED: &str = "reconcile-orders";
/// The feed that lists Centra's orders for those Ferry never saw.
pub const CENTRA_FEED: &str = "reconcile-centra-orders";
/// The feed that reads every ERP document for those no Centra order explains.
pub const DOCUMENTS_FEED: &str = "reconcile-erp-documents";
/// The feed that compares Centra's sellable stock with what Ferry expects.
pub const STOCK_FEED: &str = "reconcile-stock";
/// ERP documents read per pass of the documents feed.
pub const DOCUMENTS_PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ReconcilerError {
    #[error("reconciler.{0} does not fit a time span")]
    Setting(&'static str),
}

/// Runs one check feed per tenant whose ERP connector can read documents back, until the
/// platform's shutdown.
pub async fn run(platform: Platform, connectors: Connectors) -> Result<(), ReconcilerError> {
    let Platform {
        base,
        config,
        store,
        feeds,
        sink,
    } = platform;
    let settings = &config.reconciler;
    let recheck = span(settings.recheck, "recheck")?;
    let sweep = span(settings.sweep, "sweep")?;
    for tenant in &config.tenants {
        // Stock is checked for every brand whose stock Ferry pushes, a page per pass; the
        // walk starts again from the first SKU once per recheck interval.
        if let Some(stock) = StockCheck::for_tenant(tenant, store.clone(), sink.clone(), STOCK_PAGE)
        {
            feeds.spawn(
                FeedSpec::source(SERVICE, &tenant.id, STOCK_FEED, settings.recheck),
                Arc::new(stock),
                base.shutdown.clone(),
            );
        }
        let Some(erp) = connectors.get(&tenant.id).and_then(|c| c.read_back.clone()) else {
            tracing::warn!(
                tenant = %tenant.id,
                "the tenant's ERP connector cannot read documents back: its orders are not reconciled"
            );
            continue;
        };
        let documents = Documents {
            tenant: tenant.id.clone(),
            store: store.clone(),
            erp: erp.clone(),
            sink: sink.clone(),
            page: DOCUMENTS_PAGE,
            live_since: tokio::sync::OnceCell::new(),
        };
        feeds.spawn(
            FeedSpec::source(SERVICE, &tenant.id, DOCUMENTS_FEED, settings.interval),
            Arc::new(documents),
            base.shutdown.clone(),
        );
        let erp_for_unseen = erp.clone();
        let check = Check {
            checker: Checker::for_tenant(tenant, store.clone(), erp, sink.clone(), settings)?,
            batch: settings.batch,
            recheck,
            sweep,
        };
        feeds.spawn(
            FeedSpec::source(SERVICE, &tenant.id, CHECK_FEED, settings.interval),
            Arc::new(check),
            base.shutdown.clone(),
        );
        let unseen = Unseen {
            checker: Checker::for_tenant(
                tenant,
                store.clone(),
                erp_for_unseen,
                sink.clone(),
                settings,
            )?,
            sweep,
        };
        // Listing Centra's orders costs quota: once per recheck interval is enough, the
        // window overlapping by the grace so every order is listed once it has settled.
        feeds.spawn(
            FeedSpec::source(SERVICE, &tenant.id, CENTRA_FEED, settings.recheck),
            Arc::new(unseen),
            base.shutdown.clone(),
        );
    }
    base.shutdown.cancelled().await;
    Ok(())
}

/// One tenant's check feed.
struct Check {
    checker: Checker,
    batch: usize,
    recheck: chrono::Duration,
    sweep: chrono::Duration,
}

#[async_trait]
impl Feed for Check {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let checker = &self.checker;
        let tenant = checker.tenant.id.as_str();
        let now = Utc::now();
        let walk = Walk::parse(cursor);
        let limit = i64::try_from(self.batch).unwrap_or(i64::MAX);
        let due = checker
            .store
            .orders_to_reconcile(
                tenant,
                walk.after,
                Due {
                    settled_before: now - checker.grace,
                    recheck_before: now - self.recheck,
                    sweep_before: now - self.sweep,
                    accepted_from: None,
                },
                limit,
            )
            .await
            .map_err(FeedError::transient)?;
        if due.is_empty() {
            // The end of the tenant's orders. New orders come after it (numbers grow), so
            // the walk waits here for them; it starts again from the first order — for
            // rechecks, sweeps, a ledger row that changed and an order that settled late —
            // once per recheck interval or minute, not every pass (a walk reads the whole
            // ledger: a second at 200,000 orders).
            if now - walk.started < self.recheck.min(REWALK_AT_MOST) {
                return Ok(Pass::idle(cursor));
            }
            if walk.after > 0 {
                publish_standing(&checker.store, tenant).await?;
            }
            return Ok(Pass::idle(Walk::from_start(now).to_string()));
        }
        let checked = checker.check(&due, now).await?;
        let last = checked.last().map_or(walk.after, |c| c.order);
        Ok(Pass {
            cursor: Walk {
                after: last,
                ..walk
            }
            .to_string(),
            items: checked.len() as u64,
            more: due.len() >= self.batch,
            ..Pass::default()
        })
    }
}

/// The longest the check walk waits at the end of the ledger before it starts again.
const REWALK_AT_MOST: chrono::Duration = chrono::Duration::seconds(60);

/// Where the check walk stands: after which order number, and when this walk through the
/// ledger began (`<after>@<RFC 3339>` as the feed's cursor; a bare number, the form before,
/// reads as a walk begun long ago).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Walk {
    after: i64,
    started: chrono::DateTime<Utc>,
}

impl Walk {
    fn from_start(now: chrono::DateTime<Utc>) -> Walk {
        Walk {
            after: 0,
            started: now,
        }
    }

    fn parse(cursor: &str) -> Walk {
        let (after, started) = cursor.split_once('@').unwrap_or((cursor, ""));
        Walk {
            after: after.parse().unwrap_or(0),
            started: chrono::DateTime::parse_from_rfc3339(started)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC),
        }
    }
}

impl std::fmt::Display for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.after, self.started.to_rfc3339())
    }
}

/// One tenant's walk through the orders Centra lists as changed, for those the ledger
/// never saw. The cursor is when the last listing was made; each listing reaches back by
/// the grace, so an order changed just before a listing is listed again once settled.
struct Unseen {
    checker: Checker,
    sweep: chrono::Duration,
}

#[async_trait]
impl Feed for Unseen {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        let checker = &self.checker;
        let now = Utc::now();
        let Some(live_since) = checker
            .store
            .first_order_day(&checker.tenant.id)
            .await
            .map_err(FeedError::transient)?
        else {
            // No order checked yet: whatever Centra holds is history.
            return Ok(Pass::idle(cursor));
        };
        // The first listing reaches back one sweep; `ferry reconcile run --since` checks
        // further back on demand.
        let last = chrono::DateTime::parse_from_rfc3339(cursor)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now - self.sweep);
        let checked = checker
            .check_unseen(last - checker.grace, live_since, now)
            .await?;
        Ok(Pass {
            cursor: now.to_rfc3339(),
            items: checked.len() as u64,
            ..Pass::default()
        })
    }
}

/// `ferry_reconcile_complete_ratio`, `_accurate_ratio`, `_money_at_stake_minor` by currency
/// and `_last_sweep_timestamp_seconds`, from the tenant's verdicts as recorded; and the
/// day-by-day figures of this month and the last, as the console shows them.
async fn publish_standing(store: &Store, tenant: &str) -> Result<(), FeedError> {
    let causes = completeness_causes();
    let standing = store
        .standing(tenant, &causes)
        .await
        .map_err(FeedError::transient)?;
    let (from, to) = counted_days(Utc::now().date_naive());
    store
        .refresh_reconciliation_days(tenant, from, to, &causes)
        .await
        .map_err(FeedError::transient)?;
    let ratio = |n: i64| {
        if standing.checked == 0 {
            1.0
        } else {
            n as f64 / standing.checked as f64
        }
    };
    metrics::gauge!("ferry_reconcile_complete_ratio", "tenant" => tenant.to_owned())
        .set(ratio(standing.complete));
    metrics::gauge!("ferry_reconcile_accurate_ratio", "tenant" => tenant.to_owned())
        .set(ratio(standing.accurate));
    for (currency, minor) in &standing.at_stake {
        metrics::gauge!("ferry_reconcile_money_at_stake_minor", "tenant" => tenant.to_owned(), "currency" => currency.clone())
            .set(*minor as f64);
    }
    metrics::gauge!("ferry_reconcile_last_sweep_timestamp_seconds", "tenant" => tenant.to_owned())
        .set(Utc::now().timestamp() as f64);
    Ok(())
}

/// The days whose figures the reconciler keeps counted: from the first of last month (a
/// month is closed in the days after it ends) to today.
pub fn counted_days(today: chrono::NaiveDate) -> (chrono::NaiveDate, chrono::NaiveDate) {
    use chrono::Datelike as _;
    let first_of_this = today.with_day(1).unwrap_or(today);
    let first_of_last = first_of_this
        .pred_opt()
        .and_then(|d| d.with_day(1))
        .unwrap_or(first_of_this);
    (first_of_last, today)
}

/// The names of the causes that make an order incomplete.
pub fn completeness_causes() -> Vec<&'static str> {
    Cause::ALL
        .iter()
        .filter(|c| c.is_completeness())
        .map(Cause::as_str)
        .collect()
}

/// One tenant's walk through every document of its ERP, for documents no Centra order that
/// Ferry knows explains (entered by hand, or by another system). Documents from before the
/// tenant's first order are the ERP's history and are left alone.
pub struct Documents {
    pub tenant: String,
    pub store: Store,
    pub erp: Arc<dyn ReadBack>,
    pub sink: Arc<dyn ExceptionSink>,
    /// Documents read per request.
    pub page: usize,
    /// When the tenant's first order reached Ferry, once known: it never changes after
    /// (ledger rows stay), and finding it reads the whole ledger.
    pub live_since: tokio::sync::OnceCell<chrono::DateTime<Utc>>,
}

#[async_trait]
impl Feed for Documents {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        Ok(self.walk(cursor).await?.0)
    }
}

impl Documents {
    /// One page of the walk from `cursor`: the pass, and the documents no order explains
    /// (each recorded, and raised as an exception, before this returns).
    pub async fn walk(&self, cursor: &str) -> Result<(Pass, Vec<Variance>), FeedError> {
        let mut found = Vec::new();
        let live_since = match self.live_since.get() {
            Some(at) => *at,
            None => match self
                .store
                .first_order_at(&self.tenant)
                .await
                .map_err(FeedError::transient)?
            {
                Some(at) => *self.live_since.get_or_init(|| async { at }).await,
                // No order yet: whatever the ERP holds is history.
                None => return Ok((Pass::idle(cursor), found)),
            },
        };
        let page = self
            .erp
            .headers_since(cursor, self.page)
            .await
            .map_err(|e| FeedError::Transient {
                retry_after: e.retry_after(),
                reason: format!("listing the ERP's documents: {e}"),
            })?;
        let numbers: Vec<i64> = page
            .documents
            .iter()
            .filter_map(|d| d.external_ref.parse().ok())
            .collect();
        let known = self
            .store
            .orders_in_ledger(&self.tenant, &numbers)
            .await
            .map_err(FeedError::transient)?;
        let since = live_since.format("%Y-%m-%d").to_string();
        for document in &page.documents {
            let explained = document
                .external_ref
                .parse::<i64>()
                .is_ok_and(|n| known.contains(&n));
            // Dates compare as text: RFC 3339 and Tryton's dates both begin YYYY-MM-DD.
            let history = document
                .created_at
                .get(..10)
                .is_some_and(|day| day < since.as_str());
            if explained || history || document.state == ferry_erp::DocumentState::Cancelled {
                continue;
            }
            let variance = Variance {
                order: document.external_ref.parse().unwrap_or(0),
                cause: Cause::Unexplained,
                owner: Cause::Unexplained.owner(),
                money_minor: document.gross_minor.abs(),
                currency: document.currency.clone(),
                detail: format!(
                    "sales order {} (external reference {:?}) matches no Centra order Ferry knows",
                    document.reference, document.external_ref
                ),
                erp_reference: Some(document.reference.clone()),
            };
            count_variance(&self.tenant, &variance);
            self.store
                .record_unexplained_document(
                    &self.tenant,
                    &UnexplainedDocument {
                        erp_reference: document.reference.clone(),
                        document_date: order_day(&document.created_at),
                        currency: document.currency.clone(),
                        gross_minor: document.gross_minor,
                        variance: serde_json::to_value(&variance).unwrap_or_default(),
                    },
                )
                .await
                .map_err(FeedError::transient)?;
            self.sink
                .record(&exception(
                    &self.tenant,
                    ExceptionKind::UnexplainedErpDocument,
                    &variance,
                ))
                .await
                .map_err(FeedError::transient)?;
            found.push(variance);
        }
        let pass = Pass {
            items: page.documents.len() as u64,
            // Not the page's length: an ERP leaves deleted documents out of a page.
            more: page.next_cursor != cursor,
            cursor: page.next_cursor,
            ..Pass::default()
        };
        Ok((pass, found))
    }

    /// After a walk through every document (`found`, all it reported): the documents
    /// recorded as unexplained that it no longer found so — deleted or cancelled in the
    /// ERP since — are forgotten and their exceptions resolved. Only a whole walk knows
    /// this; the service's incremental walk never forgets.
    pub async fn settle(&self, found: &[Variance]) -> Result<u64, FeedError> {
        let still: Vec<String> = found
            .iter()
            .filter_map(|v| v.erp_reference.clone())
            .collect();
        self.store
            .forget_unexplained_documents(
                &self.tenant,
                &still,
                ExceptionKind::UnexplainedErpDocument.as_str(),
                "the reconciler no longer finds the document in the ERP (deleted or cancelled)",
            )
            .await
            .map_err(FeedError::transient)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Utc};

    use super::{Walk, counted_days};

    #[test]
    fn the_stores_day_figures_keep_the_steps_in_their_order() {
        let steps: Vec<&str> = crate::timeliness::Step::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(steps, ferry_store::reconciliation::TIMED_STEPS);
    }

    #[test]
    fn the_walk_cursor_reads_back_and_the_old_form_starts_a_new_walk_soon() {
        let started = Utc::now();
        let walk = Walk {
            after: 4711,
            started,
        };
        let back = Walk::parse(&walk.to_string());
        assert_eq!(back.after, 4711);
        assert_eq!(back.started.timestamp_micros(), started.timestamp_micros());
        // The cursor before walks were timed: a bare number, or nothing at all.
        let old = Walk::parse("4711");
        assert_eq!(old.after, 4711);
        assert_eq!(old.started, chrono::DateTime::<Utc>::MIN_UTC);
        assert_eq!(Walk::parse("").after, 0);
    }

    #[test]
    fn this_month_and_the_last_are_kept_counted() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("a day");
        assert_eq!(
            counted_days(day(2026, 12, 6)),
            (day(2026, 11, 1), day(2026, 12, 6))
        );
        assert_eq!(
            counted_days(day(2027, 1, 1)),
            (day(2026, 12, 1), day(2027, 1, 1))
        );
        assert_eq!(
            counted_days(day(2028, 3, 31)),
            (day(2028, 2, 1), day(2028, 3, 31))
        );
    }
}
