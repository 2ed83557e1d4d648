//! The ERP's shipped time as Centra reads it.

/// The ERP's shipped time as Centra reads it: "YYYY-MM-DD HH:MM:SS" in UTC. A bare date
/// (Tryton's `effective_date`) gets noon, so the day is right in every time zone the brand
/// sells in — but never later than `now`: Centra refuses a shipment dated in the future,
/// and before noon UTC today's noon is still to come.
pub(crate) fn centra_time(erp: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
    if let Ok(day) = chrono::NaiveDate::parse_from_str(erp, "%Y-%m-%d") {
        let noon = day.and_time(chrono::NaiveTime::MIN) + chrono::Duration::hours(12);
        return noon.and_utc().min(now).format(FORMAT).to_string();
    }
    match chrono::DateTime::parse_from_rfc3339(erp) {
        // An ERP clock ahead of Centra's is refused the same way.
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .min(now)
            .format(FORMAT)
            .to_string(),
        Err(_) => erp.chars().take(19).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    #[test]
    fn a_bare_date_is_noon_unless_noon_is_still_to_come() {
        let morning = Utc.with_ymd_and_hms(2026, 11, 28, 1, 41, 7).unwrap();
        assert_eq!(centra_time("2026-11-27", morning), "2026-11-27 12:00:00");
        // Found by CI running after midnight: Centra refused "today 12:00" at 01:41.
        assert_eq!(centra_time("2026-11-28", morning), "2026-11-28 01:41:07");
        let evening = Utc.with_ymd_and_hms(2026, 11, 28, 19, 0, 0).unwrap();
        assert_eq!(centra_time("2026-11-28", evening), "2026-11-28 12:00:00");
        // A warehouse a time zone ahead already says tomorrow.
        assert_eq!(centra_time("2026-11-29", evening), "2026-11-28 19:00:00");
    }

    #[test]
    fn times_are_utc_and_never_ahead_of_now() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap();
        assert_eq!(
            centra_time("2026-11-28T09:30:00+01:00", now),
            "2026-11-28 08:30:00"
        );
        assert_eq!(
            centra_time("2026-11-28T10:05:00Z", now),
            "2026-11-28 10:00:00"
        );
    }

    proptest! {
        /// Whatever the ERP says and whenever Ferry runs, Centra is never told a shipment
        /// left in the future, and a date keeps its day.
        #[test]
        fn never_in_the_future(days in 0i64..2_000, secs in 0i64..86_400, offset in -2i64..=2) {
            let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::days(days) + chrono::Duration::seconds(secs);
            let day = (now + chrono::Duration::days(offset)).format("%Y-%m-%d").to_string();
            let sent = centra_time(&day, now);
            let parsed = chrono::NaiveDateTime::parse_from_str(&sent, "%Y-%m-%d %H:%M:%S").unwrap().and_utc();
            prop_assert!(parsed <= now);
            if offset <= 0 {
                prop_assert_eq!(parsed.format("%Y-%m-%d").to_string(), day);
            }
        }
    }
}
