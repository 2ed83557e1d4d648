//! The shipment feed (customer shipments done, by write date) and stock levels per
//! warehouse (`forecast_quantity`), read for fulfilment feedback and the inventory pusher.

use ferry_erp::{ErpError, ErpShipment, ErpShipmentLine, ShipmentPage, StockLevel};
use serde_json::{Value, json};

use crate::Tryton;
use crate::rpc::{datetime, read_datetime};

impl Tryton {
    /// Customer shipments in state done, by (write date, id); the cursor is the last one's
    /// "write date|id". Tracking number: the shipment's `shipping_reference`.
    pub(crate) async fn shipments_page(
        &self,
        cursor: &str,
        limit: usize,
    ) -> Result<ShipmentPage, ErpError> {
        let mut domain = vec![json!(["state", "=", "done"])];
        if let Some((at, id)) = cursor.split_once('|') {
            let (Some(at), Ok(id)) = (datetime(at), id.parse::<i64>()) else {
                return Err(ErpError::Misconfigured(format!(
                    "not a Tryton shipment cursor: {cursor}"
                )));
            };
            domain.push(json!([
                "OR",
                [["write_date", ">", at]],
                [["write_date", "=", at], ["id", ">", id]]
            ]));
        }
        let rows = self
            .rpc
            .call(
                "model.stock.shipment.out.search_read",
                vec![
                    json!(domain),
                    json!(0),
                    json!(limit.clamp(1, 500)),
                    json!([["write_date", "ASC"], ["id", "ASC"]]),
                    json!([
                        "number",
                        "effective_date",
                        "shipping_reference",
                        "carrier.rec_name",
                        "write_date",
                        "outgoing_moves"
                    ]),
                ],
            )
            .await?;
        let rows = rows.as_array().cloned().unwrap_or_default();
        let mut next_cursor = cursor.to_owned();
        let mut shipments = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = row["id"].as_i64().unwrap_or_default();
            if let Some(at) = read_datetime(&row["write_date"]) {
                next_cursor = format!("{at}|{id}");
            }
            let moves: Vec<i64> = row["outgoing_moves"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            let lines = self
                .rpc
                .call(
                    "model.stock.move.read",
                    vec![json!(moves), json!(["product.code", "quantity", "origin"])],
                )
                .await?;
            let mut sale_line = None;
            let mut out_lines: Vec<ErpShipmentLine> = Vec::new();
            for m in lines.as_array().into_iter().flatten() {
                let item = m["product."]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let quantity = m["quantity"].as_f64().unwrap_or(0.0).round() as i64;
                if sale_line.is_none() {
                    sale_line = m["origin"]
                        .as_str()
                        .and_then(|o| o.strip_prefix("sale.line,"))
                        .and_then(|n| n.parse::<i64>().ok());
                }
                match out_lines.iter_mut().find(|l| l.erp_item == item) {
                    Some(l) => l.quantity += quantity,
                    None => out_lines.push(ErpShipmentLine {
                        erp_item: item,
                        quantity,
                    }),
                }
            }
            let Some(sale_line) = sale_line else {
                continue; // not from a sale
            };
            let sale = self
                .rpc
                .call(
                    "model.sale.line.read",
                    vec![json!([sale_line]), json!(["sale.reference"])],
                )
                .await?;
            let reference = sale[0]["sale."]["reference"].as_str().unwrap_or_default();
            // Shipments of sales Ferry did not post (or another brand's) are not ours.
            let Some(external_ref) = reference
                .strip_prefix(&self.config.reference_prefix)
                .filter(|r| !r.is_empty())
            else {
                continue;
            };
            shipments.push(ErpShipment {
                id: row["number"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("stock.shipment.out,{id}")),
                external_ref: external_ref.to_owned(),
                shipped_at: read_datetime(&row["effective_date"]).unwrap_or_default(),
                carrier: row["carrier."]["rec_name"].as_str().map(str::to_owned),
                tracking_number: row["shipping_reference"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                lines: out_lines,
            });
        }
        Ok(ShipmentPage {
            shipments,
            next_cursor,
            ..ShipmentPage::default()
        })
    }

    /// Units customers are sending back to `warehouse` that it has not received yet, per
    /// product code: Tryton's forecast counts a return shipment's incoming moves at once,
    /// but a parcel on its way (or not fit for resale) is nothing to sell (ADR 0037).
    async fn returns_not_received(
        &self,
        warehouse: &Value,
        products: &Value,
    ) -> Result<std::collections::HashMap<String, f64>, ErpError> {
        let mut domain = vec![
            json!(["shipment", "like", "stock.shipment.out.return,%"]),
            json!(["state", "not in", ["done", "cancelled"]]),
            json!(["to_location", "child_of", [warehouse], "parent"]),
        ];
        for clause in products.as_array().into_iter().flatten() {
            if let Some(field) = clause.get(0).and_then(Value::as_str) {
                let mut on_product = clause.clone();
                on_product[0] = json!(format!("product.{field}"));
                domain.push(on_product);
            }
        }
        let moves = self
            .rpc
            .call(
                "model.stock.move.search_read",
                vec![
                    json!(domain),
                    json!(0),
                    Value::Null,
                    Value::Null,
                    json!(["product.code", "quantity"]),
                ],
            )
            .await?;
        let mut out = std::collections::HashMap::new();
        for m in moves.as_array().into_iter().flatten() {
            let code = m["product."]["code"]
                .as_str()
                .or_else(|| m["product.code"].as_str())
                .unwrap_or_default()
                .to_owned();
            *out.entry(code).or_insert(0.0) += m["quantity"].as_f64().unwrap_or(0.0);
        }
        Ok(out)
    }

    /// `forecast_quantity` per warehouse: stock on hand less confirmed sales not yet
    /// shipped, which is what may still be sold — less customers' returns not yet received.
    pub(crate) async fn stock_per_warehouse(
        &self,
        items: &[String],
    ) -> Result<Vec<StockLevel>, ErpError> {
        let warehouses = self
            .rpc
            .call(
                "model.stock.location.search_read",
                vec![
                    json!([["type", "=", "warehouse"]]),
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                    json!(["code", "name"]),
                ],
            )
            .await?;
        let domain = if items.is_empty() {
            json!([["type", "=", "goods"]])
        } else {
            json!([["code", "in", items]])
        };
        let mut levels = Vec::new();
        for wh in warehouses.as_array().into_iter().flatten() {
            let name = wh["code"]
                .as_str()
                .filter(|c| !c.is_empty())
                .or_else(|| wh["name"].as_str())
                .unwrap_or_default()
                .to_owned();
            let rows = self
                .rpc
                .call_in(
                    "model.product.product.search_read",
                    vec![
                        domain.clone(),
                        json!(0),
                        Value::Null,
                        json!([["code", "ASC"]]),
                        json!(["code", "forecast_quantity"]),
                    ],
                    json!({"locations": [wh["id"]]}),
                )
                .await?;
            let returning = self.returns_not_received(&wh["id"], &domain).await?;
            for row in rows.as_array().into_iter().flatten() {
                let code = row["code"].as_str().unwrap_or_default().to_owned();
                let forecast = row["forecast_quantity"].as_f64().unwrap_or(0.0);
                let coming_back = returning.get(&code).copied().unwrap_or(0.0);
                levels.push(StockLevel {
                    available: (forecast - coming_back).floor() as i64,
                    erp_item: code,
                    warehouse: name.clone(),
                });
            }
        }
        Ok(levels)
    }
}
