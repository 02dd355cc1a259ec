//! A stage's `quarantine` list: tests known to be flaky that may fail without failing the
//! stage, each until a date (`{ test = "tests::sometimes", until = "2027-01-31" }`). The dates
//! are checked here; whether one has passed is the host's to say (`sluice check`, `run`),
//! since an expired entry must not stop `sluice runs` from reading the pipeline.

use serde::{Deserialize, Serialize};

use super::raw::RawQuarantine;
use crate::diagnostic::Diagnostic;
use crate::source::Source;

/// At most this many quarantined tests per stage: a longer list is a broken suite, not flakes.
pub const MAX_QUARANTINED: usize = 100;

/// One quarantined test: its name as the stage's JUnit writes it (`name`, or `class::name`)
/// and the last day (UTC) it may fail without failing the stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub test: String,
    /// `YYYY-MM-DD`, as written.
    pub until: String,
    /// `until` as days since 1970-01-01.
    pub until_day: i64,
}

impl Quarantine {
    /// Whether the entry still holds on `today` (days since 1970-01-01): through its `until`
    /// day, inclusive.
    pub fn holds_on(&self, today: i64) -> bool {
        today <= self.until_day
    }

    /// Whether it names the test `name` of class `class` (`name` alone, or `class::name`).
    pub fn covers(&self, class: &str, name: &str) -> bool {
        self.test == name || (!class.is_empty() && self.test == format!("{class}::{name}"))
    }
}

/// Today (UTC, from the system clock) as days since 1970-01-01.
pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs / 86_400).unwrap_or(i64::MAX)
}

/// `YYYY-MM-DD` as days since 1970-01-01, when it is a real date.
pub fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        return None;
    }
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: i64 = text.get(5..7)?.parse().ok()?;
    let day: i64 = text.get(8..10)?.parse().ok()?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month)
        .contains(&day)
        .then(|| days_from_civil(year, month, day))
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The stage's `quarantine` list, checked: each test named once, each date a real
/// `YYYY-MM-DD`, at most [`MAX_QUARANTINED`] entries.
pub(super) fn resolve(
    list: Option<&[RawQuarantine]>,
    src: &Source<'_>,
) -> Result<Vec<Quarantine>, Diagnostic> {
    let mut out: Vec<Quarantine> = Vec::new();
    for entry in list.unwrap_or_default() {
        let test = entry.test.get_ref().trim();
        if test.is_empty() {
            return Err(src
                .error(entry.test.span(), "a quarantined test needs a name")
                .with_hint(
                    "name the test as its JUnit does, e.g. `{ test = \"tests::sometimes\", until = \"2027-01-31\" }`",
                ));
        }
        if out.iter().any(|q| q.test == test) {
            return Err(src
                .error(
                    entry.test.span(),
                    format!("test `{test}` is quarantined twice"),
                )
                .with_hint("keep one entry per test"));
        }
        let until = entry.until.get_ref().trim();
        let Some(until_day) = parse_date(until) else {
            return Err(src
                .error(
                    entry.until.span(),
                    format!("invalid date {until:?} in the quarantine of `{test}`"),
                )
                .with_hint(
                    "write the last day the test may fail as YYYY-MM-DD (UTC), e.g. until = \"2027-01-31\"",
                ));
        };
        out.push(Quarantine {
            test: test.to_string(),
            until: until.to_string(),
            until_day,
        });
        if out.len() > MAX_QUARANTINED {
            return Err(src
                .error(
                    entry.test.span(),
                    format!("more than {MAX_QUARANTINED} quarantined tests in one stage"),
                )
                .with_hint("fix or delete tests instead: a quarantine is for a few known flakes"));
        }
    }
    Ok(out)
}

/// The entries expired on `today`, each as a line naming the test and its date.
pub fn expired(entries: &[Quarantine], today: i64) -> Vec<String> {
    entries
        .iter()
        .filter(|q| !q.holds_on(today))
        .map(|q| format!("`{}` (until {})", q.test, q.until))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_since_the_epoch_and_only_real_ones_parse() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        for bad in [
            "2023-02-29",
            "2027-13-01",
            "2027-00-10",
            "2027-04-31",
            "27-01-31",
            "2027/01/31",
            "2027-1-31",
            "+027-01-31",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_entry_holds_through_its_last_day_and_covers_the_name_or_class_and_name() {
        let entry = Quarantine {
            test: "tests::sometimes".into(),
            until: "2027-01-31".into(),
            until_day: 100,
        };
        assert!(entry.holds_on(99) && entry.holds_on(100) && !entry.holds_on(101));
        assert!(entry.covers("flaky_crate", "tests::sometimes"));
        assert!(!entry.covers("flaky_crate", "tests::always"));
        let qualified = Quarantine {
            test: "flaky_crate::tests::sometimes".into(),
            ..entry
        };
        assert!(qualified.covers("flaky_crate", "tests::sometimes"));
        assert!(!qualified.covers("other", "tests::sometimes"));
    }

    fn entry(test: &str, until_day: i64) -> Quarantine {
        Quarantine {
            test: test.into(),
            until: format!("day {until_day}"),
            until_day,
        }
    }

    #[test]
    fn expired_entries_are_named_with_their_date() {
        let entries = [entry("a", 3), entry("b", 9)];
        assert_eq!(expired(&entries, 5), ["`a` (until day 3)"]);
        assert!(expired(&entries, 3).is_empty());
    }
}
