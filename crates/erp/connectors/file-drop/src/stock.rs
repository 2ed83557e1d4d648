//! Stock as the ERP drops it: `stock/<name>.csv`, the whole stock, the newest file by name
//! counting. RFC 4180 CSV (the `csv` crate) as spreadsheets save it — a header naming the
//! columns `warehouse`, `item`, `available` in any order (others are ignored), commas or
//! semicolons, quoted fields, a byte-order mark, CRLF line ends; item codes are text, so
//! `000123` stays `000123`.

use async_trait::async_trait;
use ferry_erp::{ErpError, StockFeed, StockLevel};

use crate::{FileDrop, files, io_error};

/// The levels of one stock file's content.
pub fn parse(bytes: &[u8]) -> Result<Vec<StockLevel>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let header_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    // A spreadsheet in a decimal-comma locale separates with semicolons.
    let delimiter = if !header_line.contains(&b',') && header_line.contains(&b';') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("no {name:?} column (the header is {headers:?})"))
    };
    let (warehouse, item, available) =
        (column("warehouse")?, column("item")?, column("available")?);
    let mut levels = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line numbers as a person counts them: the header is line 1.
        let line = i + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |n: usize| record.get(n).unwrap_or_default();
        let units = field(available);
        let units: i64 = units
            .parse()
            .map_err(|_| format!("line {line}: available {units:?} is not a whole number"))?;
        if field(item).is_empty() || field(warehouse).is_empty() {
            return Err(format!("line {line}: a warehouse and an item are needed"));
        }
        levels.push(StockLevel {
            warehouse: field(warehouse).to_owned(),
            erp_item: field(item).to_owned(),
            available: units,
        });
    }
    Ok(levels)
}

#[async_trait]
impl StockFeed for FileDrop {
    /// The newest stock file's levels (of `items`, or all); none before the first file.
    async fn stock_levels(&self, items: &[String]) -> Result<Vec<StockLevel>, ErpError> {
        let dir = self.stock_dir();
        let Some(newest) = files(&dir, ".csv").await?.pop() else {
            return Ok(Vec::new());
        };
        let path = dir.join(&newest);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error(&path, &e))?;
        // Until a good file replaces it, the stock is not read (the source reports it).
        let levels = parse(&bytes).map_err(|reason| {
            ErpError::Rejected(format!("stock/{newest} cannot be read: {reason}"))
        })?;
        Ok(if items.is_empty() {
            levels
        } else {
            levels
                .into_iter()
                .filter(|l| items.contains(&l.erp_item))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn level(warehouse: &str, item: &str, available: i64) -> StockLevel {
        StockLevel {
            warehouse: warehouse.into(),
            erp_item: item.into(),
            available,
        }
    }

    /// A file as a spreadsheet saves it: byte-order mark, CRLF, quotes, a semicolon inside
    /// a quoted field, leading zeros, columns in its own order and one more.
    #[test]
    fn a_spreadsheets_file_loads_exactly() {
        let file = "\u{feff}Item,Description,Warehouse,Available\r\n\
                    000123,\"Jacket, olive\",Main,7\r\n\
                    \"00-45\",\"Tee; \"\"basic\"\"\",Main,0\r\n\
                    \r\n\
                    JKT-M,,Outlet,-2\r\n";
        assert_eq!(
            parse(file.as_bytes()),
            Ok(vec![
                level("Main", "000123", 7),
                level("Main", "00-45", 0),
                level("Outlet", "JKT-M", -2),
            ])
        );
    }

    #[test]
    fn semicolons_where_the_locale_uses_them() {
        let file = "warehouse;item;available\nMain;0042;3\n";
        assert_eq!(parse(file.as_bytes()), Ok(vec![level("Main", "0042", 3)]));
    }

    #[test]
    fn what_cannot_be_read_names_its_line() {
        assert!(parse(b"warehouse,item\nMain,A\n").is_err_and(|e| e.contains("available")));
        assert!(
            parse(b"warehouse,item,available\nMain,A,1\nMain,B,3.5\n")
                .is_err_and(|e| e.contains("line 3"))
        );
        assert!(parse(b"warehouse,item,available\n,A,1\n").is_err_and(|e| e.contains("line 2")));
    }

    proptest! {
        /// Whatever the codes hold (commas, quotes, leading zeros, spaces inside), a file
        /// written by a CSV writer reads back as written.
        #[test]
        fn what_a_csv_writer_writes_reads_back(
            rows in proptest::collection::vec(("[A-Za-z0-9 ,;\"-]{1,8}", "[0-9A-Za-z ,\"-]{1,10}", -50i64..500), 0..20)
        ) {
            let rows: Vec<(String, String, i64)> = rows
                .into_iter()
                .map(|(w, i, n)| (w.trim().to_owned(), i.trim().to_owned(), n))
                .filter(|(w, i, _)| !w.is_empty() && !i.is_empty())
                .collect();
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(["warehouse", "item", "available"]).unwrap_or_default();
            for (w, i, n) in &rows {
                writer.write_record([w.as_str(), i.as_str(), &n.to_string()]).unwrap_or_default();
            }
            let bytes = writer.into_inner().unwrap_or_default();
            let expected: Vec<StockLevel> = rows.iter().map(|(w, i, n)| level(w, i, *n)).collect();
            prop_assert_eq!(parse(&bytes), Ok(expected));
        }
    }
}
