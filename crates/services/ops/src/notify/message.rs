//! What a team reads: one message for a batch of notices, in the team's words — how many
//! new and overdue exceptions, what kind, the money at stake, a few examples and where to
//! work them. Bounded in length however large the batch (a storm of 5,000 is one short
//! message).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferry_domain::money::{Currency, group_thousands};
use ferry_domain::{ExceptionKind, Owner};
use ferry_store::notify::Notice;

/// Kinds listed by name before the rest are summed up.
const KINDS_SHOWN: usize = 8;
/// Example exceptions shown per kind.
const EXAMPLES: usize = 3;

/// A message ready for any channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The e-mail's subject; the chat message's first line.
    pub subject: String,
    /// Plain text with `*bold*` marks (rendered by Slack-compatible chats, harmless in
    /// e-mail).
    pub body: String,
    /// How many exceptions it tells about.
    pub exceptions: usize,
}

/// Who the message is for and where they act.
#[derive(Debug, Clone)]
pub struct Audience<'a> {
    pub tenant: &'a str,
    pub brand: &'a str,
    pub team: Owner,
    pub console_url: Option<&'a str>,
}

/// What the team should do, in its own words.
fn advice(team: Owner) -> &'static str {
    match team {
        Owner::Finance => {
            "These change what is booked. Compare the order in Centra with the ERP, correct \
             the side that is wrong, then resolve the exception with a note."
        }
        Owner::Operations => {
            "These hold up orders, shipments or stock. Map the missing items or correct the \
             shipment, then retry the exception: Ferry sends the held work on."
        }
        Owner::CustomerService => {
            "Customers may be waiting to hear from you. Check the order's timeline, tell the \
             customer what is happening, then resolve the exception with a note."
        }
        Owner::Engineering => {
            "Ferry or one of its connections needs a fix. The held work is kept; retry the \
             exceptions once the cause is fixed, and Ferry posts each exactly once."
        }
    }
}

/// Money per currency, added exactly.
#[derive(Debug, Default)]
struct Stake(BTreeMap<String, i128>);

impl Stake {
    fn add(&mut self, n: &Notice) {
        if let (Some(minor), Some(code)) = (n.amount_minor, n.currency.as_deref()) {
            *self.0.entry(code.to_owned()).or_default() += i128::from(minor);
        }
    }

    fn text(&self) -> Option<String> {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(
                |(code, minor)| match (Currency::from_code(code), i64::try_from(*minor)) {
                    (Some(c), Ok(m)) => c.format(m),
                    _ => format!("{minor} minor units of {code}"),
                },
            )
            .collect();
        (!parts.is_empty()).then(|| parts.join(" + "))
    }
}

/// Notices of one event, grouped by kind (most first).
fn by_kind<'a>(notices: &[&'a Notice]) -> Vec<(String, Vec<&'a Notice>)> {
    let mut kinds: BTreeMap<&str, Vec<&Notice>> = BTreeMap::new();
    for n in notices {
        kinds.entry(n.kind.as_str()).or_default().push(n);
    }
    let mut kinds: Vec<(String, Vec<&Notice>)> =
        kinds.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    kinds.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    kinds
}

fn title(kind: &str) -> String {
    kind.parse::<ExceptionKind>()
        .map(|k| k.title().to_owned())
        .unwrap_or_else(|_| kind.to_owned())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    let word = if n == 1 { one } else { many };
    format!("{} {word}", group(n))
}

fn group(n: usize) -> String {
    group_thousands(&n.to_string())
}

/// Cuts a line people wrote (or a service did) to `max` characters.
fn clip(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        format!("{}…", line.chars().take(max).collect::<String>())
    }
}

fn section(body: &mut String, heading: &str, notices: &[&Notice]) {
    if notices.is_empty() {
        return;
    }
    let mut stake = Stake::default();
    notices.iter().for_each(|n| stake.add(n));
    let _ = write!(body, "\n*{heading}: {}*", group(notices.len()));
    if let Some(money) = stake.text() {
        let _ = write!(body, " — {money} at stake");
    }
    body.push('\n');
    let kinds = by_kind(notices);
    for (kind, items) in kinds.iter().take(KINDS_SHOWN) {
        let mut kind_stake = Stake::default();
        items.iter().for_each(|n| kind_stake.add(n));
        let _ = write!(body, "• {}: {}", title(kind), group(items.len()));
        if let Some(money) = kind_stake.text() {
            let _ = write!(body, " ({money})");
        }
        body.push('\n');
        for n in items.iter().take(EXAMPLES) {
            let order = n
                .order_number
                .map(|o| format!("order {o}: "))
                .unwrap_or_default();
            let _ = writeln!(body, "    – {order}{}", clip(&n.message, 160));
        }
        if items.len() > EXAMPLES {
            let _ = writeln!(body, "    – and {} more", group(items.len() - EXAMPLES));
        }
    }
    if kinds.len() > KINDS_SHOWN {
        let rest: usize = kinds.iter().skip(KINDS_SHOWN).map(|(_, v)| v.len()).sum();
        let _ = writeln!(
            body,
            "• and {} of {} other kinds",
            group(rest),
            kinds.len() - KINDS_SHOWN
        );
    }
}

/// One message for a batch; `None` when nothing in it is still open (every exception was
/// resolved or ignored before the batch went out).
pub fn compose(to: &Audience<'_>, notices: &[Notice]) -> Option<Message> {
    let live: Vec<&Notice> = notices
        .iter()
        .filter(|n| matches!(n.state.as_str(), "open" | "retrying"))
        .collect();
    if live.is_empty() {
        return None;
    }
    let raised: Vec<&Notice> = live
        .iter()
        .copied()
        .filter(|n| n.event == "raised")
        .collect();
    let overdue: Vec<&Notice> = live
        .iter()
        .copied()
        .filter(|n| n.event != "raised")
        .collect();
    let mut counts = Vec::new();
    if !raised.is_empty() {
        counts.push(plural(raised.len(), "new exception", "new exceptions"));
    }
    if !overdue.is_empty() {
        counts.push(format!("{} overdue", group(overdue.len())));
    }
    let mut stake = Stake::default();
    live.iter().for_each(|n| stake.add(n));
    let mut subject = format!(
        "Ferry · {} · {}: {}",
        to.brand,
        to.team.team_name(),
        counts.join(", ")
    );
    if let Some(money) = stake.text() {
        let _ = write!(subject, " ({money} at stake)");
    }
    let mut body = format!("*{subject}*\n");
    section(&mut body, "New", &raised);
    section(
        &mut body,
        "Overdue — past the time your team has to act",
        &overdue,
    );
    let _ = write!(body, "\n{}\n", advice(to.team));
    let filter = format!("owner = {} AND state = open", to.team.as_str());
    match to.console_url {
        Some(url) => {
            let _ = writeln!(
                body,
                "Your inbox: {}/tenants/{}/exceptions?team={}",
                url.trim_end_matches('/'),
                to.tenant,
                to.team.as_str()
            );
        }
        None => {
            let _ = writeln!(
                body,
                "Your inbox: ferry exceptions list --tenant {} --filter '{filter}'",
                to.tenant
            );
        }
    }
    Some(Message {
        subject,
        body,
        exceptions: live.len(),
    })
}

/// The body of a Slack incoming webhook (also taken by Mattermost, Rocket.Chat and other
/// Slack-compatible receivers): `text` is the whole message.
pub fn slack_body(message: &Message) -> serde_json::Value {
    serde_json::json!({ "text": message.body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn notice(id: i64, kind: ExceptionKind, event: &str, minor: i64, state: &str) -> Notice {
        Notice {
            id,
            event: event.into(),
            exception_id: uuid::Uuid::now_v7(),
            kind: kind.as_str().into(),
            message: format!("SKU JKT-{id} has no ERP item; order {id} waits"),
            order_number: Some(id),
            amount_minor: Some(minor),
            currency: Some("SEK".into()),
            state: state.into(),
            sla_due: chrono::Utc::now(),
            queued_at: chrono::Utc::now(),
        }
    }

    fn ops() -> Audience<'static> {
        Audience {
            tenant: "acme",
            brand: "Acme",
            team: Owner::Operations,
            console_url: None,
        }
    }

    #[test]
    fn a_storm_is_one_short_message_with_the_whole_count_and_money() {
        let storm: Vec<Notice> = (1..=5_000)
            .map(|i| notice(i, ExceptionKind::UnmappedSku, "raised", 12_550, "open"))
            .collect();
        let m = compose(&ops(), &storm).expect("a message");
        assert_eq!(m.exceptions, 5_000);
        assert_eq!(
            m.subject,
            "Ferry · Acme · Operations: 5,000 new exceptions (627,500.00 SEK at stake)"
        );
        assert!(m.body.contains("Items not mapped to an ERP item: 5,000"));
        assert!(m.body.contains("and 4,997 more"), "{}", m.body);
        assert!(m.body.contains("Map the missing items"));
        assert!(m.body.len() < 2_000, "{} bytes", m.body.len());
    }

    #[test]
    fn resolved_before_sending_is_not_news_and_overdue_is_its_own_section() {
        let gone = [notice(
            1,
            ExceptionKind::ErpRejected,
            "raised",
            100,
            "resolved",
        )];
        assert_eq!(compose(&ops(), &gone), None);
        let mixed = [
            notice(1, ExceptionKind::ErpRejected, "raised", 100, "ignored"),
            notice(2, ExceptionKind::ErpRejected, "overdue", 100, "open"),
        ];
        let m = compose(&ops(), &mixed).expect("one is live");
        assert!(
            m.subject
                .ends_with("Operations: 1 overdue (1.00 SEK at stake)"),
            "{}",
            m.subject
        );
        assert!(
            m.body
                .contains("*Overdue — past the time your team has to act: 1*")
        );
        assert!(!m.body.contains("*New"));
    }

    #[test]
    fn the_console_link_names_the_tenant_and_team() {
        let to = Audience {
            console_url: Some("https://ferry.example/"),
            team: Owner::Finance,
            ..ops()
        };
        let m = compose(
            &to,
            &[notice(
                1,
                ExceptionKind::ErpTotalsMismatch,
                "raised",
                5,
                "open",
            )],
        )
        .expect("message");
        assert!(
            m.body
                .contains("https://ferry.example/tenants/acme/exceptions?team=finance")
        );
        assert!(m.body.contains("Compare the order in Centra with the ERP"));
        assert_eq!(slack_body(&m)["text"], m.body);
    }

    #[test]
    fn the_inbox_command_is_one_the_api_takes() {
        let m = compose(
            &ops(),
            &[notice(1, ExceptionKind::UnmappedSku, "raised", 5, "open")],
        )
        .expect("message");
        let filter = m
            .body
            .split("--filter '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("a filter");
        let parsed = crate::filter::parse(filter).expect("the API's filter syntax");
        assert_eq!(parsed.owner.as_deref(), Some("operations"));
    }

    proptest! {
        /// Whatever the batch, the message counts every live exception, adds their money
        /// exactly, and stays short.
        #[test]
        fn counts_and_money_add_up(
            items in proptest::collection::vec((0usize..31, 0i64..10_000_000, any::<bool>(), any::<bool>()), 1..400)
        ) {
            let notices: Vec<Notice> = items
                .iter()
                .enumerate()
                .map(|(i, (k, minor, overdue, open))| notice(
                    i as i64,
                    ExceptionKind::ALL[*k],
                    if *overdue { "overdue" } else { "raised" },
                    *minor,
                    if *open { "open" } else { "resolved" },
                ))
                .collect();
            let live: Vec<&Notice> = notices.iter().filter(|n| n.state == "open").collect();
            match compose(&ops(), &notices) {
                None => prop_assert!(live.is_empty()),
                Some(m) => {
                    prop_assert_eq!(m.exceptions, live.len());
                    let total: i64 = live.iter().filter_map(|n| n.amount_minor).sum();
                    let money = Currency::from_code("SEK").expect("SEK").format(total);
                    prop_assert!(m.subject.contains(&money), "{} lacks {}", m.subject, money);
                    prop_assert!(m.body.len() < 6_000, "{} bytes", m.body.len());
                }
            }
        }
    }
}
