//! ERP calls sent many per request where the tenant's ERP takes them in bulk: concurrent
//! messages' calls share one request (group commit, as the ledger writes do), and each
//! message still gets its own verdict.

use std::future::Future;
use std::sync::Arc;

use ferry_erp::{
    ChangeOrders, ChangeOutcome, CreditNotes, CreditOutcome, ErpDocument, ErpError, OrderChange,
    PostCredit, PostOrder, PostOrders,
};
use ferry_runtime::coalesce::Coalescer;
use ferry_runtime::consumer::HandlerError;
use tokio::sync::Semaphore;

use crate::breaker::Breaker;

/// Order creates, many per request.
pub type Creates = Coalescer<PostOrder, Result<ErpDocument, ErpError>>;

/// Credit notes, many per request.
pub type Credits = Coalescer<PostCredit, Result<CreditOutcome, ErpError>>;

/// Changes of posted orders, many per request.
pub type Changes = Coalescer<OrderChange, Result<ChangeOutcome, ErpError>>;

/// Batched creates, when the tenant's ERP has a batch call and batching is on.
pub fn creates(
    config: &ferry_config::ErpWriterConfig,
    erp: &Arc<dyn PostOrders>,
    in_flight: &Arc<Semaphore>,
    breaker: &Arc<Breaker>,
) -> Option<Creates> {
    let (erp, breaker) = (erp.clone(), breaker.clone());
    batched(config, erp.batch_limit(), in_flight, move |orders| {
        let (erp, breaker) = (erp.clone(), breaker.clone());
        async move {
            let results = erp.create_sales_orders(&orders).await;
            // The breaker counts requests: one failed batch is one failure, not fifty.
            breaker.observe(&results);
            results
        }
    })
}

/// Batched credit notes, when the tenant's ERP makes them in bulk and batching is on.
pub fn credits(
    config: &ferry_config::ErpWriterConfig,
    erp: &Arc<dyn CreditNotes>,
    in_flight: &Arc<Semaphore>,
) -> Option<Credits> {
    let erp = erp.clone();
    batched(
        config,
        erp.credit_batch_limit(),
        in_flight,
        move |credits| {
            let erp = erp.clone();
            async move { erp.create_credit_notes(&credits).await }
        },
    )
}

/// Batched changes, when the tenant's ERP applies them in bulk and batching is on.
pub fn changes(
    config: &ferry_config::ErpWriterConfig,
    erp: &Arc<dyn ChangeOrders>,
    in_flight: &Arc<Semaphore>,
) -> Option<Changes> {
    let erp = erp.clone();
    batched(
        config,
        erp.change_batch_limit(),
        in_flight,
        move |changes| {
            let erp = erp.clone();
            async move { erp.change_sales_orders(&changes).await }
        },
    )
}

/// Sends `item` with others where the tenant's ERP takes them in bulk (`batches`), else
/// alone through `alone`, within the tenant's bound on requests in flight. The outer error
/// is the writer stopping; the inner result is the ERP's.
pub async fn send<I, O, Fut>(
    batches: Option<&Coalescer<I, Result<O, ErpError>>>,
    in_flight: &Semaphore,
    item: I,
    alone: impl FnOnce(I) -> Fut,
) -> Result<Result<O, ErpError>, HandlerError>
where
    I: Send + 'static,
    O: Send + 'static,
    Fut: Future<Output = Result<O, ErpError>>,
{
    match batches {
        Some(batches) => batches
            .call(item)
            .await
            .ok_or_else(|| HandlerError::transient("the ERP batch writer stopped")),
        None => {
            let _slot = in_flight.acquire().await.map_err(HandlerError::transient)?;
            Ok(alone(item).await)
        }
    }
}

/// Items sent `call` many at a time, at most `batches_in_flight` requests at once, each
/// holding one of the tenant's in-flight slots; `None` when batches would be of one.
fn batched<I, O, F, Fut>(
    config: &ferry_config::ErpWriterConfig,
    erp_limit: usize,
    in_flight: &Arc<Semaphore>,
    call: F,
) -> Option<Coalescer<I, Result<O, ErpError>>>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Result<O, ErpError>>> + Send + 'static,
{
    let max_batch = config.batch_size.min(erp_limit);
    if max_batch <= 1 {
        return None;
    }
    let batches = config
        .batches_in_flight
        .min(config.max_in_flight_per_tenant);
    let (in_flight, call) = (in_flight.clone(), Arc::new(call));
    Some(Coalescer::spawn(
        max_batch,
        batches,
        move |items: Vec<I>| {
            let (in_flight, call) = (in_flight.clone(), call.clone());
            async move {
                let n = items.len();
                // A batch is one request: it takes one of the tenant's in-flight slots.
                let Ok(_slot) = in_flight.acquire_owned().await else {
                    let closed = ErpError::Unavailable {
                        reason: "the writer is stopping".into(),
                        retry_after: None,
                    };
                    return (0..n).map(|_| Err(closed.clone())).collect();
                };
                let mut results = call(items).await;
                // A connector that answers fewer items than it was given leaves the rest
                // uncertain: they are settled like a lost answer (looked up, or found by
                // reference on the retry).
                results.resize_with(n, || {
                    Err(ErpError::Timeout(
                        "no result for this item in the batch".into(),
                    ))
                });
                results
            }
        },
    ))
}
