//! Shipments a warehouse drops as files: `shipments/<name>.json`, read in name order. A
//! file holds one shipment or a list of them:
//!
//! ```json
//! {"id": "SH-1234", "order": "48170", "shipped_at": "2026-12-06T10:15:00Z",
//!  "carrier": "PostNord", "tracking_number": "00340434161234567890",
//!  "lines": [{"item": "JKT-OLV-M", "quantity": 1}]}
//! ```
//!
//! `id` defaults to the file's name. A file that cannot be read is reported (with its
//! content) and passed over: the next files still reach Centra.

use async_trait::async_trait;
use ferry_erp::{ErpError, ErpShipment, ErpShipmentLine, ShipmentFeed, ShipmentPage, Unreadable};
use serde::Deserialize;

use crate::{FileDrop, files, io_error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentFile {
    #[serde(default)]
    id: Option<String>,
    /// The Centra order number.
    order: String,
    shipped_at: String,
    #[serde(default)]
    carrier: Option<String>,
    #[serde(default)]
    tracking_number: Option<String>,
    lines: Vec<LineFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineFile {
    item: String,
    quantity: i64,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(ShipmentFile),
    Many(Vec<ShipmentFile>),
}

/// The shipments of one file's content; `stem` names them when they do not.
pub fn parse(stem: &str, bytes: &[u8]) -> Result<Vec<ErpShipment>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    // A byte-order mark from a Windows editor is not part of the JSON.
    let text = text.trim_start_matches('\u{feff}');
    let parsed: OneOrMany = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let list = match parsed {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(list) => list,
    };
    let many = list.len() > 1;
    list.into_iter()
        .enumerate()
        .map(|(i, s)| {
            if s.lines.iter().any(|l| l.quantity <= 0) {
                return Err(format!("shipment {i}: a line without a positive quantity"));
            }
            let id = s.id.unwrap_or_else(|| {
                if many {
                    format!("{stem}-{}", i + 1)
                } else {
                    stem.to_owned()
                }
            });
            Ok(ErpShipment {
                id,
                external_ref: s.order.trim().to_owned(),
                shipped_at: s.shipped_at,
                carrier: s.carrier.filter(|c| !c.is_empty()),
                tracking_number: s.tracking_number.filter(|t| !t.is_empty()),
                lines: s
                    .lines
                    .into_iter()
                    .map(|l| ErpShipmentLine {
                        erp_item: l.item,
                        quantity: l.quantity,
                    })
                    .collect(),
            })
        })
        .collect()
}

#[async_trait]
impl ShipmentFeed for FileDrop {
    /// Files named after `cursor` (the last file read), at most `limit` of them.
    async fn shipments_since(&self, cursor: &str, limit: usize) -> Result<ShipmentPage, ErpError> {
        let dir = self.shipments_dir();
        let names: Vec<String> = files(&dir, ".json")
            .await?
            .into_iter()
            .filter(|n| n.as_str() > cursor)
            .take(limit.max(1))
            .collect();
        let mut page = ShipmentPage {
            next_cursor: names.last().cloned().unwrap_or_else(|| cursor.to_owned()),
            ..ShipmentPage::default()
        };
        for name in names {
            let path = dir.join(&name);
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| io_error(&path, &e))?;
            let stem = name.trim_end_matches(".json");
            match parse(stem, &bytes) {
                Ok(shipments) => page.shipments.extend(shipments),
                Err(reason) => page.unreadable.push(Unreadable {
                    name: format!("shipments/{name}"),
                    reason,
                    content: bytes,
                }),
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shipment_or_a_list_and_the_file_names_them() {
        let one = br#"{"order": "48170", "shipped_at": "2026-12-06", "tracking_number": "PN1",
                       "lines": [{"item": "JKT", "quantity": 1}]}"#;
        let parsed = parse("20261206-a", one).unwrap_or_default();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].id, "20261206-a");
        assert_eq!(parsed[0].carrier, None);
        let many = "\u{feff}[{\"order\": \"1\", \"shipped_at\": \"d\", \"lines\": []},
                          {\"id\": \"X\", \"order\": \"2\", \"shipped_at\": \"d\", \"lines\": []}]";
        let parsed = parse("f", many.as_bytes()).unwrap_or_default();
        let ids: Vec<&str> = parsed.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["f-1", "X"]);
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        assert!(parse("f", b"{\"order\": 1}").is_err());
        assert!(parse("f", b"not json").is_err());
        let zero = br#"{"order": "1", "shipped_at": "d", "lines": [{"item": "A", "quantity": 0}]}"#;
        assert!(parse("f", zero).is_err_and(|e| e.contains("positive")));
        let unknown = br#"{"order": "1", "shipped_at": "d", "lines": [], "colour": "red"}"#;
        assert!(parse("f", unknown).is_err());
    }
}
