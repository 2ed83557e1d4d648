//! The frame every page shares (navigation, who is signed in, sign out) and the small
//! helpers that show times, money and teams the way people read them.

use chrono::{DateTime, Utc};
use ferry_domain::{ExceptionKind, Owner};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// The sections of the console, as the navigation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Inbox,
    Orders,
    Mappings,
    Reconciliation,
    Health,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Inbox, "/", "Inbox"),
    (Section::Orders, "/orders", "Orders"),
    (Section::Mappings, "/mappings", "Mappings"),
    (Section::Reconciliation, "/reconciliation", "Reconciliation"),
    (Section::Health, "/health", "Sync health"),
];

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · Ferry" }
        link rel="stylesheet" href="/static/console.css";
        script src="/static/console.js" defer {}
    }
}

/// A page for a signed-in person.
pub(crate) fn page(session: &Session, section: Section, title: &str, body: Markup) -> Markup {
    let who = &session.who;
    html! {
        html lang="en" {
            head { (head(title)) }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Ferry" }
                    nav aria-label="Sections" {
                        ul {
                            @for (s, href, name) in SECTIONS {
                                li {
                                    @if s == section {
                                        a href=(href) aria-current="page" { (name) }
                                    } @else {
                                        a href=(href) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/logout" {
                        span.who { (who.name) " · " (role_name(who)) }
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// A page with no one signed in (sign-in, refusals).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        html lang="en" {
            head { (head(title)) }
            body { main #main.narrow { (body) } }
        }
    }
}

fn role_name(who: &crate::access::Principal) -> &'static str {
    who.role.team().map_or("Admin", |t| t.team_name())
}

/// The team a stored owner names, as people say it.
pub(crate) fn team(owner: &str) -> &str {
    [
        Owner::Finance,
        Owner::Operations,
        Owner::CustomerService,
        Owner::Engineering,
    ]
    .into_iter()
    .find(|o| o.as_str() == owner)
    .map_or(owner, |o| o.team_name())
}

/// An exception kind's title in the owning team's words (the kind itself if unknown).
pub(crate) fn kind_title(kind: &str) -> &str {
    ExceptionKind::ALL
        .iter()
        .find(|k| k.as_str() == kind)
        .map_or(kind, |k| k.title())
}

pub(crate) fn money(minor: Option<i64>, currency: &str) -> String {
    minor.map_or_else(String::new, |m| {
        ferry_domain::money::format_minor(m, currency)
    })
}

pub(crate) fn at(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
}

/// A time as `2026-12-06 18:04 UTC`, in a `<time>` element machines can read.
pub(crate) fn time(ts: Option<&prost_types::Timestamp>) -> Markup {
    match at(ts) {
        Some(t) => html! {
            time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M UTC")) }
        },
        None => html! { "–" },
    }
}

/// How long until (or since) `due`, in hours and minutes: the SLA timer.
pub(crate) fn sla(
    due: Option<&prost_types::Timestamp>,
    overdue: bool,
    now: DateTime<Utc>,
) -> Markup {
    let Some(due) = at(due) else {
        return html! { "–" };
    };
    let minutes = (due - now).num_minutes();
    let span = human(minutes.unsigned_abs());
    html! {
        @if overdue {
            span.overdue { "overdue by " (span) }
        } @else if minutes >= 0 {
            span { "due in " (span) }
        } @else {
            span { "was due " (span) " ago" }
        }
    }
}

fn human(minutes: u64) -> String {
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(5), "5 min");
        assert_eq!(human(125), "2 h 5 min");
        assert_eq!(human(3 * 24 * 60 + 10), "3 days");
    }

    #[test]
    fn teams_and_kinds_in_their_words_unknown_ones_as_stored() {
        assert_eq!(team("customer_service"), "Customer service");
        assert_eq!(team("someone"), "someone");
        assert_eq!(kind_title("no_such_kind"), "no_such_kind");
        assert_ne!(kind_title("unmapped_sku"), "unmapped_sku");
    }
}
