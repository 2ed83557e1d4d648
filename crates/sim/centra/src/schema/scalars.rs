//! The scalars of the simulated schema: Centra's decimal numbers, `DateTimeTz` (with
//! relative dates), and the date formats Centra's fields take.

use super::*;

/// Centra's `Float`, carried as an exact decimal: integral values print as integers
/// (`49`), others with their shortest exact digits (`1847.95`), like Centra's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num(pub Decimal);

#[Scalar(name = "Float")]
impl ScalarType for Num {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::Number(n) => {
                let text = n.to_string();
                Decimal::from_str(&text)
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map(Num)
                    .map_err(|_| InputValueError::custom(format!("{text} is not a decimal")))
            }
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        let d = self.0.normalize();
        if d.scale() == 0
            && let Some(i) = d.to_i64()
        {
            return Value::Number(i.into());
        }
        d.to_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

pub(crate) fn date(stored: &str, format: Option<&str>) -> String {
    match format {
        Some("Y-m-d") => stored.get(..10).unwrap_or(stored).to_owned(),
        _ => stored.to_owned(),
    }
}

/// Centra's `DateTimeTz`: ISO 8601 with offset out ("2022-06-23T15:47:12+00:00"); in, the
/// looser forms Centra's examples use — "2022-06-23 15:47:12", RFC 3339, a bare date, and
/// PHP-style relative times ("now", "yesterday", "-1 hour"). Anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeTz(pub chrono::DateTime<chrono::Utc>);

impl DateTimeTz {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let now = chrono::Utc::now();
        let relative = match text {
            "now" => Some(now),
            "today" => now.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            "yesterday" => (now.date_naive() - chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc()),
            _ => relative(text, now),
        };
        relative
            .or_else(|| crate::state::parse_time(text))
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
            .map(DateTimeTz)
    }
}

/// "-1 hour", "+2 days", "-30 minutes" from `now`.
pub(crate) fn relative(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let (amount, unit) = text.split_once(' ')?;
    let amount: i64 = amount.parse().ok()?;
    let span = match unit.trim_end_matches('s') {
        "second" => chrono::Duration::seconds(amount),
        "minute" => chrono::Duration::minutes(amount),
        "hour" => chrono::Duration::hours(amount),
        "day" => chrono::Duration::days(amount),
        _ => return None,
    };
    Some(now + span)
}

#[Scalar(name = "DateTimeTz")]
impl ScalarType for DateTimeTz {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            Value::String(text) => DateTimeTz::parse(text).ok_or_else(|| {
                async_graphql::InputValueError::custom(format!(
                    "{text} is not a date Centra understands"
                ))
            }),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
    }
}
