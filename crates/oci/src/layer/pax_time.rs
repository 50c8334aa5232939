//! PAX times as go-winio writes and reads them (`backuptar/strconv.go`,
//! a copy of Go's `archive/tar`): `secs[.frac]`, the fraction zero-padded
//! to nine digits and its trailing zeros trimmed, negative times written
//! as one signed decimal (−0.5 s is `-0.5`, not `-1.5`).

use std::fmt;
use std::str::FromStr;

/// A point in time: seconds since the Unix epoch plus nanoseconds, the
/// nanoseconds always counting forward (−0.5 s is `(-1, 500_000_000)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PaxTime {
    /// Whole seconds, floored.
    pub secs: i64,
    /// Nanoseconds after `secs`, below 1e9.
    pub nanos: u32,
}

impl PaxTime {
    /// `secs` seconds and `nanos` nanoseconds, normalised so that
    /// `nanos` is below 1e9.
    pub fn new(secs: i64, nanos: u32) -> PaxTime {
        PaxTime {
            secs: secs + i64::from(nanos / 1_000_000_000),
            nanos: nanos % 1_000_000_000,
        }
    }

    /// Whole seconds.
    pub fn from_secs(secs: i64) -> PaxTime {
        PaxTime { secs, nanos: 0 }
    }
}

impl fmt::Display for PaxTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return write!(f, "{}", self.secs);
        }
        let (sign, secs, nanos) = if self.secs < 0 {
            // −1 s + 0.5 s is written −0.5: borrow the second back.
            ("-", -(self.secs + 1), 1_000_000_000 - self.nanos)
        } else {
            ("", self.secs, self.nanos)
        };
        let frac = format!("{nanos:09}");
        write!(f, "{sign}{secs}.{}", frac.trim_end_matches('0'))
    }
}

/// A string that is not a PAX time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PAX time {0:?}")]
pub struct PaxTimeError(String);

impl FromStr for PaxTime {
    type Err = PaxTimeError;

    /// go-winio's `parsePAXTime`: digits beyond the ninth are dropped,
    /// fewer are right-padded, and a leading `-` makes the fraction count
    /// backwards too.
    fn from_str(s: &str) -> Result<PaxTime, PaxTimeError> {
        let bad = || PaxTimeError(s.to_string());
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs: i64 = whole.parse().map_err(|_| bad())?;
        if frac.is_empty() {
            return Ok(PaxTime::from_secs(secs));
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        let nanos: u32 = digits.parse().map_err(|_| bad())?;
        if !whole.starts_with('-') || nanos == 0 {
            return Ok(PaxTime { secs, nanos });
        }
        Ok(PaxTime {
            secs: secs.checked_sub(1).ok_or_else(bad)?,
            nanos: 1_000_000_000 - nanos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_winio_formats() {
        for (secs, nanos, text) in [
            (1, 0, "1"),
            (1, 5, "1.000000005"),
            (1, 500_000_000, "1.5"),
            (-1, 500_000_000, "-0.5"),
            (0, 0, "0"),
            (-2, 0, "-2"),
            (-2, 1, "-1.999999999"),
            (1_700_000_000, 123_456_789, "1700000000.123456789"),
        ] {
            let t = PaxTime::new(secs, nanos);
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<PaxTime>().unwrap(), t, "{text}");
        }
    }

    #[test]
    fn parser_follows_go_winio() {
        let p = |s: &str| s.parse::<PaxTime>();
        assert_eq!(p("1.0000000051").unwrap(), PaxTime::new(1, 5));
        assert_eq!(p("1.").unwrap(), PaxTime::from_secs(1));
        assert_eq!(p("-0").unwrap(), PaxTime::from_secs(0));
        assert_eq!(p("+3.25").unwrap(), PaxTime::new(3, 250_000_000));
        for bad in ["", ".5", "-", "1.5x", "1.-5", "x", "1e3"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
