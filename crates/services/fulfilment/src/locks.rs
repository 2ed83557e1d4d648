//! One shipment of an order at a time: a second shipment of the same order waits until the
//! first is settled, so it sees what the first accounted for (partial shipments, bundles).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Default)]
pub(crate) struct OrderLocks {
    held: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

pub(crate) struct OrderGuard<'a> {
    locks: &'a OrderLocks,
    order: i64,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl OrderLocks {
    pub(crate) async fn lock(&self, order: i64) -> OrderGuard<'_> {
        let lock = self.held.lock().entry(order).or_default().clone();
        let guard = lock.lock_owned().await;
        OrderGuard {
            locks: self,
            order,
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().len()
    }
}

impl Drop for OrderGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self.locks.held.lock();
        // Forget the order once nobody holds or waits for it (only the map's handle left).
        if held
            .get(&self.order)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            held.remove(&self.order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn shipments_of_one_order_take_turns_and_others_do_not_wait() {
        let locks = Arc::new(OrderLocks::default());
        let first = locks.lock(7).await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _second = locks.lock(7).await;
            })
        };
        // Another order goes through while 7 is held.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), locks.lock(8))
                .await
                .is_ok()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second shipment of 7 waited");
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), waiting)
                .await
                .is_ok()
        );
        assert_eq!(locks.len(), 0, "nothing is kept once every guard is gone");
    }
}
