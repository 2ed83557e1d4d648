//! The Events queue: listeners (additive) and confirming processed events.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::auth::{integration, need};
use crate::ops::{EventChangeType, EventObjectType, UserError, UserWarning};
use crate::queries::EventListenerView;
use crate::state::SimState;

#[derive(InputObject)]
pub struct EventListenerInput {
    pub object_type: EventObjectType,
    pub change_types: Option<Vec<EventChangeType>>,
}

#[derive(InputObject)]
pub struct EventListenerUnsetInput {
    pub object_type: EventObjectType,
}

#[derive(SimpleObject)]
pub struct EventListenersPayload {
    pub event_listeners: Vec<EventListenerView>,
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(InputObject)]
pub struct ConfirmEventsInput {
    pub events_ids: Vec<i64>,
}

#[derive(SimpleObject)]
pub struct ConfirmEventsPayload {
    pub user_errors: Vec<UserError>,
    pub user_warnings: Vec<UserWarning>,
}

#[derive(Default)]
pub struct EventMutation;

#[Object]
impl EventMutation {
    /// Additive and idempotent; the token's integration owns the queue.
    async fn set_event_listeners(
        &self,
        ctx: &Context<'_>,
        input: Vec<EventListenerInput>,
    ) -> async_graphql::Result<EventListenersPayload> {
        need(ctx, "Event:write", "setEventListeners")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        let wanted = input
            .into_iter()
            .map(|l| (l.object_type, l.change_types.unwrap_or_default()))
            .collect();
        let listeners = state.ops_mut(|ops| ops.set_listeners(&name, wanted));
        Ok(EventListenersPayload {
            event_listeners: listeners
                .into_iter()
                .map(|l| EventListenerView::new(&name, l))
                .collect(),
            user_errors: Vec::new(),
            user_warnings: Vec::new(),
        })
    }

    /// Removes listeners and deletes their queued events.
    async fn unset_event_listeners(
        &self,
        ctx: &Context<'_>,
        input: Vec<EventListenerUnsetInput>,
    ) -> async_graphql::Result<EventListenersPayload> {
        need(ctx, "Event:write", "unsetEventListeners")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        let types: Vec<EventObjectType> = input.iter().map(|i| i.object_type).collect();
        let listeners = state.ops_mut(|ops| ops.unset_listeners(&name, &types));
        Ok(EventListenersPayload {
            event_listeners: listeners
                .into_iter()
                .map(|l| EventListenerView::new(&name, l))
                .collect(),
            user_errors: Vec::new(),
            user_warnings: Vec::new(),
        })
    }

    /// Every processed event must be confirmed, or `events` keeps returning it.
    async fn confirm_events(
        &self,
        ctx: &Context<'_>,
        input: ConfirmEventsInput,
    ) -> async_graphql::Result<ConfirmEventsPayload> {
        need(ctx, "Event:write", "confirmEvents")?;
        let state = ctx.data::<Arc<SimState>>()?;
        let name = integration(ctx);
        let warnings = state.ops_mut(|ops| ops.confirm_events(&name, &input.events_ids));
        Ok(ConfirmEventsPayload {
            user_errors: Vec::new(),
            user_warnings: warnings,
        })
    }
}
