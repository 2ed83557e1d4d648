//! Store rows as the API shows them, and the API's names and page tokens.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ferry_proto::ops::v1 as pb;
use ferry_store::ops::{AuditRow, OpsException};
use tonic::Status;
use uuid::Uuid;

/// `tenants/<tenant>/exceptions/<id>`.
pub fn exception_name(tenant: &str, id: Uuid) -> String {
    format!("tenants/{tenant}/exceptions/{id}")
}

/// The tenant and id of an exception's name.
pub fn parse_exception_name(name: &str) -> Result<(String, Uuid), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["tenants", tenant, "exceptions", id] if !tenant.is_empty() => {
            let id = Uuid::parse_str(id)
                .map_err(|_| Status::invalid_argument(format!("{id:?} is not an exception id")))?;
            Ok(((*tenant).to_owned(), id))
        }
        _ => Err(Status::invalid_argument(format!(
            "{name:?} is not an exception name (tenants/<tenant>/exceptions/<id>)"
        ))),
    }
}

/// The tenant of a List's parent: `Some(tenant)`, or `None` for `tenants/-` (every tenant
/// the caller may see).
pub fn parse_parent(parent: &str) -> Result<Option<String>, Status> {
    match parent.strip_prefix("tenants/") {
        Some("-") => Ok(None),
        Some(t) if !t.is_empty() && !t.contains('/') => Ok(Some(t.to_owned())),
        _ => Err(Status::invalid_argument(format!(
            "{parent:?} is not a parent (tenants/<tenant> or tenants/-)"
        ))),
    }
}

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Where the next page starts, opaque to callers: the last row's due time and id.
pub fn page_token(e: &OpsException) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}/{}",
        e.sla_due.timestamp_micros(),
        e.id
    ))
}

pub fn parse_page_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Status::invalid_argument("page_token is not one this API gave");
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (micros, id) = text.split_once('/').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| bad())?)))
}

/// The state as people see it: an open exception with an assignee is "assigned".
pub fn state(e: &OpsException) -> &str {
    match (e.state.as_str(), &e.assignee) {
        ("open", Some(_)) => "assigned",
        (state, _) => state,
    }
}

/// An exception; `full` adds the stored payload and the audit.
pub fn exception(
    e: OpsException,
    audit: Vec<AuditRow>,
    full: bool,
    now: DateTime<Utc>,
) -> pb::Exception {
    let overdue = matches!(e.state.as_str(), "open" | "retrying") && e.sla_due < now;
    pb::Exception {
        name: exception_name(&e.tenant, e.id),
        state: state(&e).to_owned(),
        tenant: e.tenant,
        kind: e.kind,
        owner: e.owner,
        severity: e.severity,
        message: e.message,
        reason: e.reason,
        order_number: e.order_number,
        amount_minor: e.amount_minor,
        currency: e.currency.unwrap_or_default(),
        service: e.service,
        first_seen: Some(timestamp(e.first_seen)),
        last_seen: Some(timestamp(e.last_seen)),
        seen_count: e.seen_count,
        sla_due: Some(timestamp(e.sla_due)),
        overdue,
        assignee: e.assignee.unwrap_or_default(),
        state_reason: e.state_reason.unwrap_or_default(),
        payload: if full { e.payload } else { Vec::new() },
        audit: audit
            .into_iter()
            .map(|a| pb::AuditEntry {
                at: Some(timestamp(a.at)),
                actor: a.actor,
                action: a.action,
                note: a.note,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parents_read_back_or_say_what_is_wrong() {
        let id = Uuid::now_v7();
        let name = exception_name("acme", id);
        assert_eq!(
            parse_exception_name(&name).expect("name"),
            ("acme".into(), id)
        );
        for bad in [
            "acme",
            "tenants//exceptions/x",
            "tenants/acme/exceptions/nope",
        ] {
            assert!(parse_exception_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_parent("tenants/acme").expect("parent"),
            Some("acme".into())
        );
        assert_eq!(parse_parent("tenants/-").expect("all"), None);
        assert!(parse_parent("acme").is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("time");
        let id = Uuid::now_v7();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}/{id}", at.timestamp_micros()));
        assert_eq!(parse_page_token(&token).expect("token"), Some((at, id)));
        assert_eq!(parse_page_token("").expect("none"), None);
        assert!(parse_page_token("not-a-token").is_err());
    }
}
