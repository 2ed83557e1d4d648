//! An ERP's failures, classified where they arise: retry, settle by lookup, refused, or
//! misconfigured.

use std::time::Duration;

use ferry_domain::http::{StatusClass, class_of};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErpError {
    /// No answer in time: the document may or may not exist. Settle by lookup.
    #[error("the ERP did not answer in time: {0}")]
    Timeout(String),
    /// Down, overloaded or asking us to slow down: retry later.
    #[error("the ERP is unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The ERP refused the document; retrying the same thing will fail again.
    #[error("the ERP refused the sales order: {0}")]
    Rejected(String),
    /// Credentials or configuration are wrong.
    #[error("the ERP connector is misconfigured: {0}")]
    Misconfigured(String),
}

impl ErpError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ErpError::Timeout(_) | ErpError::Unavailable { .. })
    }

    /// The request may have taken effect in the ERP.
    pub fn possibly_applied(&self) -> bool {
        matches!(self, ErpError::Timeout(_))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ErpError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl ErpError {
    /// The error an unsuccessful HTTP answer stands for (`what` names the call, `body` is
    /// the answer's text, cut short).
    pub fn from_status(
        status: u16,
        what: &str,
        retry_after: Option<Duration>,
        body: &str,
    ) -> ErpError {
        let body: String = body.chars().take(300).collect();
        let said = if body.is_empty() {
            format!("{what}: HTTP {status}")
        } else {
            format!("{what}: HTTP {status}: {body}")
        };
        match class_of(status) {
            StatusClass::Uncertain => ErpError::Timeout(said),
            StatusClass::Misconfigured => ErpError::Misconfigured(said),
            StatusClass::Refused => ErpError::Rejected(said),
            StatusClass::RetryLater | StatusClass::Success => ErpError::Unavailable {
                reason: said,
                retry_after,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_the_error_that_says_what_to_do() {
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            ErpError::from_status(429, "create", wait, ""),
            ErpError::Unavailable {
                reason: "create: HTTP 429".into(),
                retry_after: wait
            }
        );
        assert!(ErpError::from_status(504, "create", None, "").possibly_applied());
        assert!(matches!(
            ErpError::from_status(401, "create", None, ""),
            ErpError::Misconfigured(_)
        ));
        assert!(matches!(
            ErpError::from_status(422, "create", None, "bad tax code"),
            ErpError::Rejected(r) if r.contains("bad tax code")
        ));
    }
}
