//! Group commit: many concurrent callers, one round trip. Items submitted while a batch is
//! being written queue up and form the next batch, so an idle system adds no latency and a
//! busy one writes hundreds of rows per statement.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// Submits items to a batch function and hands each caller its own result.
pub struct Coalescer<I, O> {
    tx: mpsc::Sender<(I, oneshot::Sender<O>)>,
}

impl<I, O> Clone for Coalescer<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Coalescer<I, O> {
    /// `run` receives up to `max_batch` items and must return one result per item, in
    /// order. At most `concurrency` batches run at once.
    pub fn spawn<F, Fut>(max_batch: usize, concurrency: usize, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, mut rx) =
            mpsc::channel::<(I, oneshot::Sender<O>)>(max_batch.max(1) * concurrency.max(1) * 2);
        let run = Arc::new(run);
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        tokio::spawn(async move {
            // Take a slot first: while every slot is busy, items keep queueing and the next
            // batch grows instead of many small ones starting.
            while let Ok(permit) = slots.clone().acquire_owned().await {
                let Some(first) = rx.recv().await else { return };
                // Callers are often woken together (by one batch answer upstream): let the
                // rest of them submit before the batch is cut.
                tokio::task::yield_now().await;
                let mut items = Vec::with_capacity(max_batch);
                let mut replies = Vec::with_capacity(max_batch);
                items.push(first.0);
                replies.push(first.1);
                while items.len() < max_batch {
                    match rx.try_recv() {
                        Ok((item, reply)) => {
                            items.push(item);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let results = run(items).await;
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                    drop(permit);
                });
            }
        });
        Self { tx }
    }

    /// Submits one item and waits for its result (`None` if the coalescer stopped or the
    /// batch function returned too few results).
    pub async fn call(&self, item: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).await.ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_under_load_and_answers_each_caller() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = batches.clone();
        let doubler = Coalescer::spawn(50, 1, move |items: Vec<u32>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                items.into_iter().map(|i| i * 2).collect::<Vec<_>>()
            }
        });
        let calls: Vec<_> = (0..500u32)
            .map(|i| {
                let d = doubler.clone();
                tokio::spawn(async move { (i, d.call(i).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap_or((0, None));
            assert_eq!(answer, Some(i * 2));
        }
        let n = batches.load(Ordering::SeqCst);
        assert!(
            n < 100,
            "500 concurrent calls should need far fewer than 500 batches, took {n}"
        );
        assert!(n >= 10, "no batch may exceed 50 items, took {n} batches");
    }

    /// Callers woken together (as by one answer upstream) share a batch, instead of the
    /// first one going alone and the rest waiting for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn callers_woken_together_share_one_batch() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let echo = Coalescer::spawn(256, 1, move |items: Vec<u32>| {
            if let Ok(mut s) = seen.lock() {
                s.push(items.len());
            }
            async move { items }
        });
        let go = Arc::new(tokio::sync::Notify::new());
        let calls: Vec<_> = (0..50u32)
            .map(|i| {
                let (echo, go) = (echo.clone(), go.clone());
                let woken = go.notified_owned();
                tokio::spawn(async move {
                    woken.await;
                    echo.call(i).await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        go.notify_waiters();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.ok().flatten(), Some(i as u32));
        }
        let sizes = sizes.lock().map(|s| s.clone()).unwrap_or_default();
        assert!(
            sizes.len() <= 2,
            "50 callers woken at once took batches of {sizes:?}"
        );
    }
}
