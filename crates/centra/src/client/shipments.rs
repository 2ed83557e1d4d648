//! Shipments: created already shipped (with the e-mail and capture per policy), completed,
//! captured, and an order's shipments looked up by its hash id.

use super::*;

/// A shipment as Centra holds it (what fulfilment feedback needs of it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CentraShipment {
    pub id: i64,
    pub number: String,
    pub is_shipped: bool,
    pub is_captured: bool,
    #[serde(default)]
    pub shipped_at: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    /// (order line id, quantity); empty when not asked for.
    #[serde(default, deserialize_with = "shipment_lines")]
    pub lines: Vec<(i64, i64)>,
}

fn shipment_lines<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(i64, i64)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Line {
        quantity: i64,
        order_line: LineRef,
    }
    #[derive(Deserialize)]
    struct LineRef {
        id: i64,
    }
    let lines: Option<Vec<Line>> = Option::deserialize(d)?;
    Ok(lines
        .unwrap_or_default()
        .into_iter()
        .map(|l| (l.order_line.id, l.quantity))
        .collect())
}

/// A shipment to create, already sent.
#[derive(Debug, Clone)]
pub struct NewShipment<'a> {
    pub order_number: i64,
    /// (order line id, quantity)
    pub lines: &'a [(i64, i64)],
    /// When it left the warehouse, as Centra reads it ("YYYY-MM-DD HH:MM:SS" or RFC 3339).
    pub shipped_at: &'a str,
    pub carrier: Option<&'a str>,
    pub service: Option<&'a str>,
    pub tracking_number: Option<&'a str>,
    pub send_email: bool,
    pub capture: bool,
}

/// `ShipmentInfoInput` of a shipment: carrier, service and tracking number.
fn shipment_info(shipment: &NewShipment<'_>) -> serde_json::Value {
    serde_json::json!({
        "carrier": shipment.carrier,
        "service": shipment.service,
        "trackingNumber": shipment.tracking_number,
    })
}

impl CentraClient {
    /// Creates a shipment already sent — lines, carrier, tracking number, the customer's
    /// e-mail and (per policy) the capture, in one mutation.
    pub async fn create_shipment(
        &self,
        shipment: &NewShipment<'_>,
    ) -> Result<CentraShipment, CentraError> {
        let lines: Vec<serde_json::Value> = shipment
            .lines
            .iter()
            .map(|(id, quantity)| serde_json::json!({ "orderLine": { "id": id }, "quantity": quantity }))
            .collect();
        let input = serde_json::json!({
            "order": { "number": shipment.order_number },
            "lines": lines,
            "isGoodToGo": true,
            "shippedAt": shipment.shipped_at,
            "shipmentInfo": shipment_info(shipment),
            "sendEmail": shipment.send_email,
            "capture": shipment.capture,
        });
        self.shipment_mutation(
            ops::CREATE_SHIPMENT,
            serde_json::json!({ "input": input }),
            "createShipment",
        )
        .await
    }

    /// Completes a shipment Centra holds but has not sent: when it left, carrier and
    /// tracking number, and the customer's e-mail per `shipment.send_email`.
    pub async fn complete_shipment(
        &self,
        id: i64,
        shipment: &NewShipment<'_>,
    ) -> Result<CentraShipment, CentraError> {
        let input = serde_json::json!({
            "shippedAt": shipment.shipped_at,
            "shipmentInfo": shipment_info(shipment),
            "sendEmail": shipment.send_email,
        });
        self.shipment_mutation(
            ops::COMPLETE_SHIPMENT,
            serde_json::json!({ "id": id, "input": input }),
            "completeShipment",
        )
        .await
    }

    /// Captures the payment of one shipment.
    pub async fn capture_shipment(&self, id: i64) -> Result<CentraShipment, CentraError> {
        self.shipment_mutation(
            ops::CAPTURE_SHIPMENT,
            serde_json::json!({ "id": id }),
            "captureShipment",
        )
        .await
    }

    /// Runs a mutation answering `{ <field>: { shipment, userErrors } }`.
    pub(crate) async fn shipment_mutation(
        &self,
        query: &str,
        variables: serde_json::Value,
        field: &str,
    ) -> Result<CentraShipment, CentraError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            shipment: Option<CentraShipment>,
            #[serde(default, deserialize_with = "crate::decode::list")]
            user_errors: Vec<UserMessage>,
        }
        let data = self.execute(query, variables).await?;
        let mut data: std::collections::HashMap<String, Payload> =
            serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
        let payload = data
            .remove(field)
            .ok_or_else(|| CentraError::Decode(format!("no {field} in the answer")))?;
        user_errors(payload.user_errors)?;
        payload
            .shipment
            .ok_or_else(|| CentraError::Decode(format!("{field} returned no shipment")))
    }

    /// The shipments of one order (by Centra's hash id, `ShipmentFilter.orderId`), to find
    /// one Ferry may already have created.
    pub async fn order_shipments(
        &self,
        order_id: &str,
    ) -> Result<Vec<CentraShipment>, CentraError> {
        self.shipments_of_orders(&[order_id]).await
    }

    /// The shipments of many orders (Centra's hash ids) in as few requests as Centra's
    /// page size allows. A shipment's order is in its number, `"<order number>-<n>"`
    /// ([`CentraShipment::order_number`]).
    pub async fn shipments_of_orders(
        &self,
        order_ids: &[&str],
    ) -> Result<Vec<CentraShipment>, CentraError> {
        #[derive(Deserialize)]
        struct Data {
            #[serde(deserialize_with = "crate::decode::list")]
            shipments: Vec<CentraShipment>,
        }
        let mut all = Vec::new();
        if order_ids.is_empty() {
            return Ok(all);
        }
        for page in 1.. {
            let data = self
                .execute(
                    ops::ORDER_SHIPMENTS,
                    serde_json::json!({ "orderIds": order_ids, "page": page }),
                )
                .await?;
            let data: Data =
                serde_json::from_slice(&data).map_err(|e| CentraError::Decode(e.to_string()))?;
            let full = data.shipments.len() >= SHIPMENTS_PAGE;
            all.extend(data.shipments);
            if !full {
                break;
            }
        }
        Ok(all)
    }
}

/// Shipments per page of [`CentraClient::shipments_of_orders`] (the query's `limit`).
const SHIPMENTS_PAGE: usize = 100;

impl CentraShipment {
    /// The order the shipment belongs to, from its number: Centra documents shipment
    /// numbers as `"<order number>-<n>"` (e.g. `"39790-1"`).
    pub fn order_number(&self) -> Option<i64> {
        self.number.rsplit_once('-')?.0.parse().ok()
    }
}
