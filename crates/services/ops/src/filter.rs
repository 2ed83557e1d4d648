//! The List filter (a subset of AIP-160): conditions joined by `AND`, each
//! `field = value` or `text : "words"`. What it cannot read is an error that says what is
//! wrong, for an InvalidArgument answer.

/// What a filter asks for; every field set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExceptionFilter {
    pub owner: Option<String>,
    pub kind: Option<String>,
    /// open, assigned, retrying, resolved, ignored.
    pub state: Option<String>,
    pub order: Option<i64>,
    pub assignee: Option<String>,
    pub overdue: Option<bool>,
    /// Words the message or reason contains (case-insensitive).
    pub text: Option<String>,
}

impl ExceptionFilter {
    /// The store's query for this filter over `tenants` (`None`: every tenant).
    pub fn query(
        self,
        tenants: Option<Vec<String>>,
        after: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
        limit: i64,
    ) -> ferry_store::ops::ExceptionQuery {
        ferry_store::ops::ExceptionQuery {
            tenants,
            owner: self.owner,
            kind: self.kind,
            state: self.state,
            order: self.order,
            assignee: self.assignee,
            overdue: self.overdue,
            text: self.text,
            after,
            limit,
        }
    }
}

/// The filter as the API reads it, every value quoted: what the console sends for the
/// fields a person picked, so a value with spaces or quotes cannot become another condition.
impl std::fmt::Display for ExceptionFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut parts: Vec<String> = Vec::new();
        for (field, value) in [
            ("owner", &self.owner),
            ("kind", &self.kind),
            ("state", &self.state),
            ("assignee", &self.assignee),
        ] {
            if let Some(v) = value {
                parts.push(format!("{field} = {}", quoted(v)));
            }
        }
        if let Some(n) = self.order {
            parts.push(format!("order = {n}"));
        }
        if let Some(b) = self.overdue {
            parts.push(format!("overdue = {b}"));
        }
        if let Some(t) = &self.text {
            parts.push(format!("text : {}", quoted(t)));
        }
        f.write_str(&parts.join(" AND "))
    }
}

/// The states a filter names; `active` is every one still to be worked (open, assigned or
/// retrying), the console's inbox.
pub const STATES: [&str; 6] = [
    "open", "assigned", "retrying", "resolved", "ignored", "active",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("filter: {0}")]
pub struct FilterError(String);

/// Reads `text` (empty: no condition).
pub fn parse(text: &str) -> Result<ExceptionFilter, FilterError> {
    let mut filter = ExceptionFilter::default();
    let tokens = tokens(text)?;
    let mut i = 0;
    while i < tokens.len() {
        if i > 0 {
            if !tokens[i].eq_ignore_ascii_case("AND") {
                return Err(FilterError(format!(
                    "expected AND between conditions, found {:?} (only AND is supported)",
                    tokens[i]
                )));
            }
            i += 1;
        }
        let (Some(field), Some(op), Some(value)) =
            (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2))
        else {
            return Err(FilterError(format!(
                "a condition is `field = value` or `text : \"words\"`; {:?} is incomplete",
                tokens[i..].join(" ")
            )));
        };
        i += 3;
        condition(&mut filter, field, op, value)?;
    }
    Ok(filter)
}

fn condition(
    filter: &mut ExceptionFilter,
    field: &str,
    op: &str,
    value: &str,
) -> Result<(), FilterError> {
    let want = |expected: &str| {
        if op == expected {
            Ok(())
        } else {
            Err(FilterError(format!(
                "{field} takes `{expected}`, not `{op}`"
            )))
        }
    };
    let slot = match field {
        "text" => {
            want(":")?;
            &mut filter.text
        }
        "owner" | "kind" | "state" | "assignee" => {
            want("=")?;
            match field {
                "owner" => &mut filter.owner,
                "kind" => &mut filter.kind,
                "state" => {
                    if !STATES.contains(&value) {
                        return Err(FilterError(format!(
                            "state is one of {}, not {value:?}",
                            STATES.join(", ")
                        )));
                    }
                    &mut filter.state
                }
                _ => &mut filter.assignee,
            }
        }
        "order" => {
            want("=")?;
            let n = value
                .parse()
                .map_err(|_| FilterError(format!("order is a number, not {value:?}")))?;
            return set(&mut filter.order, n, field);
        }
        "overdue" => {
            want("=")?;
            let b = match value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(FilterError(format!(
                        "overdue is true or false, not {value:?}"
                    )));
                }
            };
            return set(&mut filter.overdue, b, field);
        }
        other => {
            return Err(FilterError(format!(
                "unknown field {other:?}: use owner, kind, state, order, assignee, overdue or text"
            )));
        }
    };
    set(slot, value.to_owned(), field)
}

fn set<T>(slot: &mut Option<T>, value: T, field: &str) -> Result<(), FilterError> {
    if slot.is_some() {
        return Err(FilterError(format!("{field} is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// Words, quoted strings (`"two words"`, with `\"` inside), `=` and `:`.
fn tokens(text: &str) -> Result<Vec<String>, FilterError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '=' || c == ':' {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(escaped) => word.push(escaped),
                        None => return Err(FilterError("a quote is not closed".into())),
                    },
                    Some('"') => break,
                    Some(ch) => word.push(ch),
                    None => return Err(FilterError("a quote is not closed".into())),
                }
            }
            out.push(word);
        } else {
            let mut word = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '=' || ch == ':' || ch == '"' {
                    break;
                }
                word.push(ch);
                chars.next();
            }
            out.push(word);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn conditions_joined_by_and_are_read() {
        let f =
            parse(r#"owner = finance AND state=open and overdue = true AND text : "order 48170""#)
                .expect("filter");
        assert_eq!(
            f,
            ExceptionFilter {
                owner: Some("finance".into()),
                state: Some("open".into()),
                overdue: Some(true),
                text: Some("order 48170".into()),
                ..ExceptionFilter::default()
            }
        );
        assert_eq!(parse("").expect("empty"), ExceptionFilter::default());
        assert_eq!(parse("order = 48170").expect("order").order, Some(48170));
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        for (text, says) in [
            ("owner finance", "incomplete"),
            ("colour = red", "unknown field \"colour\""),
            ("order = twelve", "order is a number"),
            ("state = done", "state is one of"),
            ("overdue = maybe", "overdue is true or false"),
            ("owner = a OR owner = b", "only AND"),
            ("owner = a AND owner = b", "given twice"),
            ("text = x", "text takes `:`"),
            (r#"text : "open"#, "not closed"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_never_a_panic(text in ".{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn a_written_filter_reads_back_as_itself(
            owner in proptest::option::of("[a-z_]{1,12}"),
            kind in proptest::option::of("[a-z_ \"\\\\]{1,12}"),
            state in proptest::option::of(proptest::sample::select(STATES.to_vec())),
            assignee in proptest::option::of(".{1,12}"),
            order in proptest::option::of(any::<i64>()),
            overdue in proptest::option::of(any::<bool>()),
            text in proptest::option::of(".{1,20}"),
        ) {
            let f = ExceptionFilter {
                owner,
                kind,
                state: state.map(str::to_owned),
                assignee,
                order,
                overdue,
                text,
            };
            prop_assert_eq!(parse(&f.to_string()).expect("its own text"), f);
        }

        #[test]
        fn quoted_words_come_back_as_written(words in "[a-zA-Z0-9 \"\\\\]{0,30}") {
            let quoted = words.replace('\\', "\\\\").replace('"', "\\\"");
            let f = parse(&format!("text : \"{quoted}\"")).expect("quoted");
            prop_assert_eq!(f.text, Some(words));
        }
    }
}
