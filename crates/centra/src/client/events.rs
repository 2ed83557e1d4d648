//! Change sources beside webhooks: orders changed since a time (the resync), and the
//! Events queue (listen, read, confirm).

use super::*;

/// One entry of Centra's Events queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CentraEvent {
    pub id: i64,
    pub object_type: String,
    pub change_type: String,
    /// The order number for orders, the id otherwise (`Int64`: a number or a string).
    #[serde(deserialize_with = "crate::decode::int64")]
    pub object_reference: i64,
}

impl CentraClient {
    /// Numbers of every order changed since `from`, all pages: what the periodic resync asks
    /// for. `from` goes as a `DateTimeTz` in Centra's own output form, to the second (earlier,
    /// never later, than asked).
    pub async fn orders_changed_since(
        &self,
        from: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<i64>, CentraError> {
        let from = from.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
        #[derive(Deserialize)]
        struct Data {
            #[serde(default, deserialize_with = "crate::decode::list")]
            orders: Vec<Number>,
        }
        #[derive(Deserialize)]
        struct Number {
            number: i64,
        }
        let mut out = Vec::new();
        for page in 1.. {
            let data = self
                .execute(
                    ops::ORDERS_CHANGED_SINCE,
                    serde_json::json!({ "from": from, "limit": MAX_PAGE, "page": page }),
                )
                .await?;
            let data: Data =
                serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
            let n = data.orders.len();
            out.extend(data.orders.into_iter().map(|o| o.number));
            if n < MAX_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// Listens for order events, and returns created and completed, on this token's
    /// integration queue (idempotent).
    pub async fn listen_for_order_events(&self) -> Result<(), CentraError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            set_event_listeners: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            #[serde(default, deserialize_with = "crate::decode::list")]
            user_errors: Vec<UserMessage>,
        }
        let data = self
            .execute(ops::SET_EVENT_LISTENERS, serde_json::json!({}))
            .await?;
        let data: Data =
            serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
        user_errors(data.set_event_listeners.user_errors)
    }

    /// The oldest unconfirmed order and return events (at most `limit`, ≤ 200).
    pub async fn order_events(&self, limit: usize) -> Result<Vec<CentraEvent>, CentraError> {
        #[derive(Deserialize)]
        struct Data {
            #[serde(default, deserialize_with = "crate::decode::list")]
            events: Vec<CentraEvent>,
        }
        let data = self
            .execute(
                ops::EVENTS,
                serde_json::json!({ "limit": limit.clamp(1, MAX_PAGE) }),
            )
            .await?;
        let data: Data =
            serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
        Ok(data.events)
    }

    /// Confirms processed events; Centra keeps returning unconfirmed ones.
    pub async fn confirm_events(&self, ids: &[i64]) -> Result<Vec<UserMessage>, CentraError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            confirm_events: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            #[serde(default, deserialize_with = "crate::decode::list")]
            user_errors: Vec<UserMessage>,
            #[serde(default, deserialize_with = "crate::decode::list")]
            user_warnings: Vec<UserMessage>,
        }
        let data = self
            .execute(ops::CONFIRM_EVENTS, serde_json::json!({ "ids": ids }))
            .await?;
        let data: Data =
            serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
        user_errors(data.confirm_events.user_errors)?;
        Ok(data.confirm_events.user_warnings)
    }
}
