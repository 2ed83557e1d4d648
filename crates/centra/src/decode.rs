//! Decoding that survives the real Centra: a list field that arrives as `null`, an `Int64`
//! that arrives as a JSON number or as a string (GraphQL servers serialise 64-bit integers
//! both ways; Centra's pages do not say which it does).

use serde::Deserialize;
use serde::de::{Deserializer, Error};

/// A list that may be `null` (read as empty).
pub fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Centra's `Int64` scalar: a number, or the same number as a string.
pub fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Int64::deserialize(d)? {
        Int64::Number(n) => Ok(n),
        Int64::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| D::Error::custom(format!("not an Int64: {t:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Sample {
        #[serde(deserialize_with = "int64")]
        reference: i64,
        #[serde(default, deserialize_with = "list")]
        items: Vec<i64>,
    }

    #[test]
    fn int64_as_number_or_string_and_null_lists() {
        for text in [
            r#"{"reference": 48170, "items": null}"#,
            r#"{"reference": "48170", "items": []}"#,
            r#"{"reference": " 48170 "}"#,
        ] {
            let s: Sample = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                s,
                Sample {
                    reference: 48170,
                    items: vec![]
                }
            );
        }
        let big: Sample = serde_json::from_str(r#"{"reference": "9007199254740993"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            big.reference, 9_007_199_254_740_993,
            "beyond f64's exact range"
        );
        assert!(serde_json::from_str::<Sample>(r#"{"reference": "48x"}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"reference": 1.5}"#).is_err());
    }
}
