//! The per-tenant rules the transform applies: when an order is released, how SKUs, tax
//! rates and charges map to ERP codes. Loaded from the tenant's configuration file.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// When an order may go to the ERP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleasePolicy {
    /// Once Centra says CONFIRMED (or later) and the order is not on hold.
    #[default]
    OnConfirmation,
    /// As soon as the payment is authorised (a successful AUTH in the payment history),
    /// even while the order is still PENDING.
    OnPaymentAuthorisation,
}

/// How orders paid by guests (no Centra customer account) reach the ERP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestPolicy {
    /// Each guest becomes (or matches, by e-mail) a customer of their own.
    #[default]
    OwnRecord,
    /// All guests of a market post to one generic customer per market.
    GenericPerMarket,
}

/// The order-to-cash rules of one tenant. Every field has a default, so an empty
/// configuration is valid: release on confirmation, every SKU must be mapped, any
/// currency Ferry knows is accepted, tax codes are not checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    pub release: ReleasePolicy,
    /// Treat a Centra SKU that is not in the mapping as the ERP item code itself.
    pub erp_item_equals_sku: bool,
    /// ERP item for the shipping charge.
    pub shipping_item: String,
    /// ERP item for the handling charge.
    pub handling_item: String,
    /// ISO codes the ERP accepts. Empty: every currency Ferry knows.
    pub accepted_currencies: Vec<String>,
    /// Tax rate in percent ("25", "5.5") → ERP tax code. Empty: rates are not checked.
    pub tax_codes: BTreeMap<String, String>,
    /// Centra payment method URI → ERP payment term.
    pub payment_terms: BTreeMap<String, String>,
    /// Centra shipping option URI → ERP carrier (and service).
    pub carriers: BTreeMap<String, String>,
    /// Centra market name → ERP sales channel (or company).
    pub sales_channels: BTreeMap<String, String>,
    pub guests: GuestPolicy,
    /// Customer code used for guests when `guests = "generic_per_market"`, by market
    /// name; `"*"` is the fallback.
    pub generic_customers: BTreeMap<String, String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            release: ReleasePolicy::default(),
            erp_item_equals_sku: false,
            shipping_item: "SHIPPING".to_owned(),
            handling_item: "HANDLING".to_owned(),
            accepted_currencies: Vec::new(),
            tax_codes: BTreeMap::new(),
            payment_terms: BTreeMap::new(),
            carriers: BTreeMap::new(),
            sales_channels: BTreeMap::new(),
            guests: GuestPolicy::default(),
            generic_customers: BTreeMap::new(),
        }
    }
}

/// Looks up the ERP item of a Centra SKU.
pub trait ItemMap {
    fn erp_item(&self, sku: &str) -> Option<&str>;
}

impl ItemMap for HashMap<String, String> {
    fn erp_item(&self, sku: &str) -> Option<&str> {
        self.get(sku).map(String::as_str)
    }
}

impl ItemMap for BTreeMap<String, String> {
    fn erp_item(&self, sku: &str) -> Option<&str> {
        self.get(sku).map(String::as_str)
    }
}

/// A map that knows nothing (every SKU unmapped unless the rules say ERP item = SKU).
pub struct NoItems;

impl ItemMap for NoItems {
    fn erp_item(&self, _sku: &str) -> Option<&str> {
        None
    }
}

/// Errors reading a `centra_sku,erp_item` CSV.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingCsvError {
    #[error("line 1: the header must be `centra_sku,erp_item`, found {0:?}")]
    Header(String),
    #[error("line {line}: expected two columns `centra_sku,erp_item`, found {found:?}")]
    Columns { line: usize, found: String },
    #[error("line {line}: empty SKU or ERP item")]
    Empty { line: usize },
    #[error("line {line}: SKU {sku:?} appears twice with different ERP items")]
    Conflict { line: usize, sku: String },
}

/// Parses the `centra_sku,erp_item` CSV of the contract. Blank lines are skipped; a SKU
/// listed twice must map to the same item.
pub fn parse_mapping_csv(text: &str) -> Result<Vec<(String, String)>, MappingCsvError> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim().trim_start_matches('\u{feff}'))
        .unwrap_or("");
    if header.replace(' ', "") != "centra_sku,erp_item" {
        return Err(MappingCsvError::Header(header.to_owned()));
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for (i, raw) in lines {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        if cols.len() != 2 {
            return Err(MappingCsvError::Columns {
                line: i + 1,
                found: line.to_owned(),
            });
        }
        let (sku, item) = (cols[0], cols[1]);
        if sku.is_empty() || item.is_empty() {
            return Err(MappingCsvError::Empty { line: i + 1 });
        }
        match seen.get(sku) {
            Some(prev) if prev != item => {
                return Err(MappingCsvError::Conflict {
                    line: i + 1,
                    sku: sku.to_owned(),
                });
            }
            Some(_) => continue,
            None => {
                seen.insert(sku.to_owned(), item.to_owned());
                out.push((sku.to_owned(), item.to_owned()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_csv() {
        let csv = "centra_sku,erp_item\nTEE-WHT-L,004840\n\nJKT-BLK-M,000790\nTEE-WHT-L,004840\n";
        let rows = parse_mapping_csv(csv).unwrap_or_default();
        assert_eq!(
            rows,
            vec![
                ("TEE-WHT-L".into(), "004840".into()),
                ("JKT-BLK-M".into(), "000790".into())
            ]
        );
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert!(matches!(
            parse_mapping_csv("sku,item\n"),
            Err(MappingCsvError::Header(_))
        ));
        assert_eq!(
            parse_mapping_csv("centra_sku,erp_item\nA,1,2\n"),
            Err(MappingCsvError::Columns {
                line: 2,
                found: "A,1,2".into()
            })
        );
        assert_eq!(
            parse_mapping_csv("centra_sku,erp_item\nA,1\nA,2\n"),
            Err(MappingCsvError::Conflict {
                line: 3,
                sku: "A".into()
            })
        );
        assert_eq!(
            parse_mapping_csv("centra_sku,erp_item\n,1\n"),
            Err(MappingCsvError::Empty { line: 2 })
        );
    }

    #[test]
    fn empty_rules_toml_is_the_default() {
        let rules: Rules = serde_json::from_str("{}").unwrap_or_else(|_| Rules {
            shipping_item: "wrong".into(),
            ..Rules::default()
        });
        assert_eq!(rules, Rules::default());
    }
}
