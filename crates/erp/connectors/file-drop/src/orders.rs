//! Sales orders as files: `orders/<order number>.json`, written once (a second create of
//! the same order finds the first and returns it), looked up wherever the ERP moved it.

use std::path::PathBuf;

use async_trait::async_trait;
use ferry_domain::Currency;
use ferry_erp::{
    Address, Customer, DocumentState, ErpDocument, ErpError, LineKind, PostLine, PostOrder,
    PostOrders,
};
use serde::{Deserialize, Serialize};

use crate::{FileDrop, io_error, write_atomically};

/// The document an ERP imports. Money twice: integer minor units (exact) and a decimal
/// string in the currency's own decimals (what an importer or a person reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesOrderFile {
    /// `ferry.sales-order.v1`: a later format has another name.
    pub format: String,
    pub external_ref: String,
    pub tenant: String,
    pub currency: String,
    pub order_date: String,
    pub customer: Customer,
    /// Where the goods go, when not to the customer's address (absent: to the customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Address>,
    pub payment_term: Option<String>,
    pub carrier: Option<String>,
    pub sales_channel: Option<String>,
    pub gross: String,
    pub tax: String,
    pub net: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub lines: Vec<LineFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFile {
    pub kind: LineKind,
    pub erp_item: String,
    pub sku: Option<String>,
    pub centra_line_id: Option<i64>,
    pub quantity: i64,
    /// Percent, as a decimal string ("25", "8.875").
    pub tax_rate: String,
    pub tax_code: Option<String>,
    pub description: String,
    pub gross: String,
    pub tax: String,
    pub net: String,
    pub gross_minor: i64,
    pub tax_minor: i64,
    pub net_minor: i64,
}

pub const FORMAT: &str = "ferry.sales-order.v1";

impl SalesOrderFile {
    pub fn of(order: &PostOrder) -> Result<SalesOrderFile, ErpError> {
        let currency = Currency::from_code(&order.currency).ok_or_else(|| {
            ErpError::Rejected(format!("currency {} has no known decimals", order.currency))
        })?;
        let text = |minor: i64| currency.from_minor(minor).to_string();
        Ok(SalesOrderFile {
            format: FORMAT.to_owned(),
            external_ref: order.external_ref.clone(),
            tenant: order.tenant.clone(),
            currency: order.currency.clone(),
            order_date: order.order_date.clone(),
            customer: order.customer.clone(),
            delivery: order.delivery.clone(),
            payment_term: order.payment_term.clone(),
            carrier: order.carrier.clone(),
            sales_channel: order.sales_channel.clone(),
            gross: text(order.gross_minor),
            tax: text(order.tax_minor),
            net: text(order.gross_minor - order.tax_minor),
            gross_minor: order.gross_minor,
            tax_minor: order.tax_minor,
            lines: order
                .lines
                .iter()
                .map(|l: &PostLine| LineFile {
                    kind: l.kind,
                    erp_item: l.erp_item.clone(),
                    sku: l.sku.clone(),
                    centra_line_id: l.centra_line_id,
                    quantity: l.quantity,
                    tax_rate: l.tax_rate.clone(),
                    tax_code: l.tax_code.clone(),
                    description: l.description.clone(),
                    gross: text(l.gross_minor),
                    tax: text(l.tax_minor),
                    net: text(l.net_minor),
                    gross_minor: l.gross_minor,
                    tax_minor: l.tax_minor,
                    net_minor: l.net_minor,
                })
                .collect(),
        })
    }

    fn document(&self, reference: String, state: DocumentState, erp_state: &str) -> ErpDocument {
        ErpDocument {
            reference,
            external_ref: self.external_ref.clone(),
            currency: self.currency.clone(),
            gross_minor: self.gross_minor,
            tax_minor: self.tax_minor,
            line_count: self.lines.len(),
            rounding_minor: 0,
            state,
            erp_state: erp_state.to_owned(),
        }
    }
}

/// Where an order's file can be, and what each place means.
const PLACES: [(&str, DocumentState, &str); 3] = [
    ("", DocumentState::Complete, "written"),
    ("processed", DocumentState::Complete, "imported"),
    (
        "rejected",
        DocumentState::Cancelled,
        "rejected by the ERP's import",
    ),
];

/// An order number as a file name: letters, digits, `-` and `_` only (Centra's are digits).
fn file_name(external_ref: &str) -> Result<String, ErpError> {
    let ok = !external_ref.is_empty()
        && external_ref
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(format!("{external_ref}.json"))
    } else {
        Err(ErpError::Rejected(format!(
            "order number {external_ref:?} cannot name a file"
        )))
    }
}

impl FileDrop {
    async fn find(&self, external_ref: &str) -> Result<Option<ErpDocument>, ErpError> {
        let name = file_name(external_ref)?;
        for (place, state, said) in PLACES {
            let path: PathBuf = self.orders_dir().join(place).join(&name);
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&path, &e)),
            };
            let file: SalesOrderFile = serde_json::from_slice(&bytes).map_err(|e| {
                ErpError::Rejected(format!("{} is not a sales order file: {e}", path.display()))
            })?;
            let reference = format!(
                "orders/{}{name}",
                if place.is_empty() {
                    String::new()
                } else {
                    format!("{place}/")
                }
            );
            return Ok(Some(file.document(reference, state, said)));
        }
        Ok(None)
    }
}

#[async_trait]
impl PostOrders for FileDrop {
    async fn find_sales_order(&self, external_ref: &str) -> Result<Option<ErpDocument>, ErpError> {
        self.find(external_ref).await
    }

    /// Writes the order's file unless one exists for it already (anywhere the ERP moved
    /// it): then that one is the answer.
    async fn create_sales_order(&self, order: &PostOrder) -> Result<ErpDocument, ErpError> {
        if let Some(existing) = self.find(&order.external_ref).await? {
            return Ok(existing);
        }
        self.ensure_dirs().await?;
        let name = file_name(&order.external_ref)?;
        let file = SalesOrderFile::of(order)?;
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| ErpError::Rejected(format!("the order cannot be written: {e}")))?;
        write_atomically(&self.orders_dir().join(&name), &bytes).await?;
        Ok(file.document(format!("orders/{name}"), DocumentState::Complete, "written"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failing test says what broke

    use super::*;

    fn order(number: &str) -> PostOrder {
        PostOrder {
            tenant: "acme".into(),
            external_ref: number.into(),
            currency: "SEK".into(),
            order_date: "2026-12-06".into(),
            customer: Customer {
                email: "someone@example.com".into(),
                ..Customer::default()
            },
            delivery: None,
            lines: vec![PostLine {
                kind: LineKind::Item,
                erp_item: "000123".into(),
                sku: Some("JKT-M".into()),
                centra_line_id: Some(1),
                quantity: 2,
                tax_rate: "25".into(),
                tax_code: None,
                gross_minor: 184_795,
                tax_minor: 36_959,
                net_minor: 147_836,
                description: "Jacket".into(),
            }],
            gross_minor: 184_795,
            tax_minor: 36_959,
            payment_term: None,
            carrier: None,
            sales_channel: None,
        }
    }

    #[tokio::test]
    async fn written_once_found_wherever_the_erp_moved_it() {
        let dir = tempfile::tempdir().unwrap();
        let drop = FileDrop::new(dir.path());
        assert_eq!(drop.find_sales_order("48170").await.unwrap(), None);
        let created = drop.create_sales_order(&order("48170")).await.unwrap();
        assert_eq!(created.state, DocumentState::Complete);
        assert_eq!((created.gross_minor, created.tax_minor), (184_795, 36_959));
        let path = dir.path().join("orders/48170.json");
        let file: SalesOrderFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(file.gross, "1847.95");
        assert_eq!(file.lines[0].net, "1478.36");
        assert_eq!(file.lines[0].erp_item, "000123");
        assert_eq!(file, SalesOrderFile::of(&order("48170")).unwrap());

        // Imported: found in processed/, and never written again.
        std::fs::rename(&path, dir.path().join("orders/processed/48170.json")).unwrap();
        let again = drop.create_sales_order(&order("48170")).await.unwrap();
        assert_eq!(again.reference, "orders/processed/48170.json");
        assert!(!path.exists());

        // Refused by the ERP's import: cancelled, for finance.
        std::fs::rename(
            dir.path().join("orders/processed/48170.json"),
            dir.path().join("orders/rejected/48170.json"),
        )
        .unwrap();
        let found = drop.find_sales_order("48170").await.unwrap().unwrap();
        assert_eq!(found.state, DocumentState::Cancelled);
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("orders"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty());
    }

    #[tokio::test]
    async fn a_number_that_cannot_name_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let drop = FileDrop::new(dir.path());
        let refused = drop.create_sales_order(&order("../etc/passwd")).await;
        assert!(matches!(refused, Err(ErpError::Rejected(_))));
    }
}
