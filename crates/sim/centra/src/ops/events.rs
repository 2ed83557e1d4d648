//! The Events queues: what is raised, who listens (per integration), what is handed out and
//! confirmed. Centra keeps unconfirmed events until they are confirmed.

use std::collections::BTreeSet;

use chrono::Utc;

use super::*;

impl Ops {
    /// Raises an event for every integration listening, and a webhook.
    pub fn raise(
        &mut self,
        object_type: EventObjectType,
        change: EventChangeType,
        reference: i64,
        webhook_action: Option<&'static str>,
    ) {
        if let Some(action) = webhook_action {
            let kind = match object_type {
                EventObjectType::Order => "order",
                EventObjectType::Shipment => "shipment",
                EventObjectType::Return => "return",
                EventObjectType::Customer => "customer",
                EventObjectType::ProductSize | EventObjectType::StockChange => "",
            };
            if !kind.is_empty() {
                self.announcements.push(Announcement {
                    object_type: kind,
                    action,
                    id: reference,
                });
            }
        }
        let listening: Vec<String> = self
            .integrations
            .iter()
            .filter(|(_, i)| i.listeners.iter().any(|l| l.wants(object_type, change)))
            .map(|(name, _)| name.clone())
            .collect();
        if listening.is_empty() {
            return;
        }
        let id = self.next_event;
        self.next_event += 1;
        self.events.insert(
            id,
            Event {
                id,
                object_type,
                change_type: change,
                reference,
                created_at: Utc::now(),
            },
        );
        for name in listening {
            if let Some(i) = self.integrations.get_mut(&name) {
                i.pending.insert(id);
            }
        }
    }

    /// `setEventListeners`: additive and idempotent; a listener for a type already
    /// listened to has its change types replaced.
    pub fn set_listeners(
        &mut self,
        integration: &str,
        wanted: Vec<(EventObjectType, Vec<EventChangeType>)>,
    ) -> Vec<Listener> {
        let now = Utc::now();
        let i = self.integrations.entry(integration.to_owned()).or_default();
        for (object_type, change_types) in wanted {
            match i
                .listeners
                .iter_mut()
                .find(|l| l.object_type == object_type)
            {
                // Additive (Centra's docs): types already listened to stay; no types
                // means every type, which nothing narrows.
                Some(l) => {
                    if change_types.is_empty() {
                        l.change_types.clear();
                    } else if !l.change_types.is_empty() {
                        for t in change_types {
                            if !l.change_types.contains(&t) {
                                l.change_types.push(t);
                            }
                        }
                    }
                    l.updated_at = now;
                }
                None => i.listeners.push(Listener {
                    object_type,
                    change_types,
                    created_at: now,
                    updated_at: now,
                }),
            }
        }
        i.listeners.clone()
    }

    /// `unsetEventListeners`: also deletes the queued events of those types.
    pub fn unset_listeners(
        &mut self,
        integration: &str,
        types: &[EventObjectType],
    ) -> Vec<Listener> {
        let Some(i) = self.integrations.get_mut(integration) else {
            return Vec::new();
        };
        i.listeners.retain(|l| !types.contains(&l.object_type));
        let events = &self.events;
        i.pending.retain(|id| {
            events
                .get(id)
                .is_some_and(|e| !types.contains(&e.object_type))
        });
        let listeners = i.listeners.clone();
        self.collect_confirmed();
        listeners
    }

    /// `events`: the oldest unconfirmed events of this integration.
    pub fn events(
        &self,
        integration: &str,
        types: Option<&[EventObjectType]>,
        changes: Option<&[EventChangeType]>,
        limit: usize,
    ) -> Vec<Event> {
        let Some(i) = self.integrations.get(integration) else {
            return Vec::new();
        };
        i.pending
            .iter()
            .filter_map(|id| self.events.get(id))
            .filter(|e| types.is_none_or(|t| t.contains(&e.object_type)))
            .filter(|e| changes.is_none_or(|c| c.contains(&e.change_type)))
            .take(limit)
            .cloned()
            .collect()
    }

    /// `confirmEvents`: unknown or already confirmed ids are a warning, not an error.
    pub fn confirm_events(&mut self, integration: &str, ids: &[i64]) -> Vec<UserWarning> {
        let mut warnings = Vec::new();
        let Some(i) = self.integrations.get_mut(integration) else {
            return vec![user_warning("No event listeners are set", &["input"])];
        };
        for id in ids {
            if !i.pending.remove(id) {
                warnings.push(user_warning(
                    format!("Event {id} is not waiting for confirmation, skipped"),
                    &["input", "eventsIds"],
                ));
            }
        }
        self.collect_confirmed();
        warnings
    }

    /// Forgets events no integration waits for.
    pub(crate) fn collect_confirmed(&mut self) {
        let waiting: BTreeSet<i64> = self
            .integrations
            .values()
            .flat_map(|i| i.pending.iter().copied())
            .collect();
        self.events.retain(|id, _| waiting.contains(id));
    }

    pub fn unconfirmed(&self, integration: &str) -> usize {
        self.integrations
            .get(integration)
            .map_or(0, |i| i.pending.len())
    }

    /// An order changed: bump its version and tell listeners and webhooks.
    pub fn order_updated(&mut self, order: &mut Order) {
        order.touch();
        self.raise(
            EventObjectType::Order,
            EventChangeType::Updated,
            order.number,
            Some("update"),
        );
    }

    // ----- allocation -----------------------------------------------------------------
}
