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
    #[error("line {line}: {reason}")]
    Unreadable { line: usize, reason: String },
}

/// Parses the `centra_sku,erp_item` CSV of the contract, as RFC 4180 has it and
/// spreadsheets save it: quoted fields (commas and quotes inside), a byte-order mark, CRLF
/// line ends; codes are text (`000790` keeps its zeros). Blank lines are skipped; a SKU
/// listed twice must map to the same item.
pub fn parse_mapping_csv(text: &str) -> Result<Vec<(String, String)>, MappingCsvError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let line_of = |r: &csv::StringRecord, fallback: usize| {
        r.position()
            .map_or(fallback, |p| usize::try_from(p.line()).unwrap_or(fallback))
    };
    let header = match records.next() {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return Err(MappingCsvError::Unreadable {
                line: 1,
                reason: e.to_string(),
            });
        }
        None => return Err(MappingCsvError::Header(String::new())),
    };
    if header.iter().collect::<Vec<_>>() != ["centra_sku", "erp_item"] {
        return Err(MappingCsvError::Header(
            header.iter().collect::<Vec<_>>().join(","),
        ));
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for (i, record) in records.enumerate() {
        let record = record.map_err(|e| MappingCsvError::Unreadable {
            line: e
                .position()
                .map_or(i + 2, |p| usize::try_from(p.line()).unwrap_or(i + 2)),
            reason: e.to_string(),
        })?;
        let line = line_of(&record, i + 2);
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != 2 {
            return Err(MappingCsvError::Columns {
                line,
                found: record.iter().collect::<Vec<_>>().join(","),
            });
        }
        let (sku, item) = (&record[0], &record[1]);
        if sku.is_empty() || item.is_empty() {
            return Err(MappingCsvError::Empty { line });
        }
        match seen.get(sku) {
            Some(prev) if prev != item => {
                return Err(MappingCsvError::Conflict {
                    line,
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

/// Writes mappings as the contract's CSV (quoting what needs it), importable again.
pub fn write_mapping_csv<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<String, MappingCsvError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let unreadable = |e: csv::Error| MappingCsvError::Unreadable {
        line: 0,
        reason: e.to_string(),
    };
    writer
        .write_record(["centra_sku", "erp_item"])
        .map_err(unreadable)?;
    for (sku, item) in rows {
        writer.write_record([sku, item]).map_err(unreadable)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| MappingCsvError::Unreadable {
            line: 0,
            reason: e.to_string(),
        })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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

    /// A mapping saved by a spreadsheet: byte-order mark, CRLF, quoted fields with commas
    /// and quotes inside, leading zeros, blank lines.
    #[test]
    fn a_spreadsheets_mapping_loads_exactly() {
        let csv = "\u{feff}centra_sku,erp_item\r\n\"TEE,WHT,L\",004840\r\n\r\n\"JKT \"\"BLK\"\"\",\"000790\"\r\n";
        assert_eq!(
            parse_mapping_csv(csv),
            Ok(vec![
                ("TEE,WHT,L".into(), "004840".into()),
                ("JKT \"BLK\"".into(), "000790".into())
            ])
        );
    }

    proptest::proptest! {
        /// What `write_mapping_csv` writes, `parse_mapping_csv` reads back exactly.
        #[test]
        fn mappings_round_trip(rows in proptest::collection::btree_map("[A-Za-z0-9 ,\"-]{1,12}", "[0-9A-Za-z ,\"]{1,10}", 0..30)) {
            let rows: Vec<(String, String)> = rows
                .into_iter()
                .map(|(s, i)| (s.trim().to_owned(), i.trim().to_owned()))
                .filter(|(s, i)| !s.is_empty() && !i.is_empty())
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let text = write_mapping_csv(rows.iter().map(|(s, i)| (s.as_str(), i.as_str())))
                .unwrap_or_default();
            proptest::prop_assert_eq!(parse_mapping_csv(&text), Ok(rows));
        }
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
