//! Values inside flags and arguments that BuildKit checks: Go durations,
//! EXPOSE ports, `--chmod` modes, stop signals and `--checksum` digests.

use std::time::Duration;

use super::Problem;

/// Parses a Go duration (`30s`, `1m30s`, `1.5h`, `500ms`, `0`), as
/// `time.ParseDuration` does. Negative durations are rejected because no
/// HEALTHCHECK option can use one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration {text:?}: use a number and a unit, like 30s, 1m30s or 500ms");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("invalid duration {text:?}: it cannot be negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1f64,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ns, us, ms, s, m or h)"
                ))
            }
            unit => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)"
                ))
            }
        };
        total += value * nanos_per;
        rest = &rest[unit_len..];
    }
    if total > i64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: it is too long"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// A port or port range from EXPOSE, e.g. `80/tcp` or `8000-8010/udp`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    /// First port of the range.
    pub start: u16,
    /// Last port of the range (equal to `start` for a single port).
    pub end: u16,
    /// `tcp` (the default), `udp` or `sctp`, lower-cased.
    pub protocol: String,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}/{}", self.start, self.protocol)
        } else {
            write!(f, "{}-{}/{}", self.start, self.end, self.protocol)
        }
    }
}

/// Parses one EXPOSE word like go-connections' `nat.ParsePortSpec`:
/// `[[ip:]hostport:]port[-port][/proto]`. Only the container side is kept;
/// BuildKit accepts the host part too but ignores it (and lints it).
/// The protocol is compared case-insensitively and stored lower-cased
/// (BuildKit lints upper case; unsure whether it also lower-cases).
pub fn parse_port(word: &str) -> Result<PortRange, String> {
    let (spec, protocol) = match word.rsplit_once('/') {
        Some((s, p)) => (s, p.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid protocol {:?} in EXPOSE {word}: use tcp, udp or sctp",
            &word[spec.len() + 1..]
        ));
    }
    // The container port is the last `:` field; an IPv6 host is in brackets.
    let container = spec.rsplit(':').next().unwrap_or(spec);
    let parse_one = |p: &str| -> Result<u16, String> {
        p.parse::<u16>().map_err(|_| {
            format!("invalid port {p:?} in EXPOSE {word}: a port is a number from 0 to 65535")
        })
    };
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (parse_one(a)?, parse_one(b)?),
        None => {
            let p = parse_one(container)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!(
            "invalid port range {container} in EXPOSE {word}: the range ends before it starts"
        ));
    }
    Ok(PortRange {
        start,
        end,
        protocol,
    })
}

/// A file mode for `COPY --chmod` / `ADD --chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Octal permission bits, at most `07777`.
    Octal(u32),
    /// A symbolic mode such as `u+x,go-w`, applied to each file's mode.
    Symbolic(String),
}

impl std::fmt::Display for Chmod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chmod::Octal(m) => write!(f, "{m:o}"),
            Chmod::Symbolic(s) => f.write_str(s),
        }
    }
}

/// Parses `--chmod`. BuildKit takes an octal number up to 07777, and (since
/// Dockerfile 1.14) symbolic modes like chmod(1): `[ugoa]*[-+=][rwxXst]*`,
/// comma-separated.
pub fn parse_chmod(value: &str) -> Result<Chmod, String> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match u32::from_str_radix(value, 8) {
            Ok(m) if m <= 0o7777 => Ok(Chmod::Octal(m)),
            _ => Err(format!(
                "invalid chmod parameter: {value}. it should be octal string and between 0 and 07777"
            )),
        };
    }
    let clause_ok = |clause: &str| {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        let mut chars = rest.chars().peekable();
        let mut saw_op = false;
        while let Some(c) = chars.next() {
            if !matches!(c, '+' | '-' | '=') {
                return false;
            }
            saw_op = true;
            while chars.peek().is_some_and(|c| "rwxXst".contains(*c)) {
                chars.next();
            }
        }
        saw_op
    };
    if !value.is_empty() && value.split(',').all(clause_ok) {
        Ok(Chmod::Symbolic(value.to_string()))
    } else {
        Err(format!(
            "invalid chmod parameter: {value}. it should be octal string and between 0 and 07777, or a symbolic mode like u+x"
        ))
    }
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// Checks a STOPSIGNAL value as moby's `signal.ParseSignal` does on Linux:
/// a positive number, or a name with or without `SIG` (`SIGTERM`, `term`,
/// `RTMIN+3`, `RTMAX-2`).
pub fn check_signal(value: &str) -> Result<(), String> {
    let invalid = || format!("invalid signal: {value}");
    if let Ok(n) = value.parse::<i64>() {
        return if n > 0 && n <= 64 {
            Ok(())
        } else {
            Err(invalid())
        };
    }
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let ok = SIGNALS.contains(&name)
        || name
            .strip_prefix("RTMIN+")
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=15).contains(&n))
        || name
            .strip_prefix("RTMAX-")
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=14).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Checks an `ADD --checksum` digest: `algorithm:hex` with a known
/// algorithm and the right length.
pub fn check_checksum(value: &str) -> Result<(), String> {
    let bad = |why: &str| format!("invalid checksum digest {value:?}: {why}");
    let Some((algo, hex)) = value.split_once(':') else {
        return Err(bad("write it as sha256:<64 hex digits>"));
    };
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(bad("the algorithm must be sha256, sha384 or sha512")),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(&format!("{algo} needs {len} lower-case hex digits")));
    }
    Ok(())
}

/// Wraps a value error as a [`Problem`] pointing at `needle`.
pub(crate) fn problem(message: String, needle: &str) -> Problem {
    Problem::new(message).needle(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_go() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(
            parse_duration("10"),
            Err("invalid duration \"10\": missing unit (ns, us, ms, s, m or h)".into())
        );
        assert_eq!(
            parse_duration("5d"),
            Err("invalid duration \"5d\": unknown unit \"d\" (use ns, us, ms, s, m or h)".into())
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("80").unwrap().to_string(), "80/tcp");
        assert_eq!(parse_port("53/UDP").unwrap().to_string(), "53/udp");
        assert_eq!(
            parse_port("8000-8010/tcp").unwrap().to_string(),
            "8000-8010/tcp"
        );
        assert_eq!(
            parse_port("127.0.0.1:8080:80").unwrap().to_string(),
            "80/tcp"
        );
        assert_eq!(
            parse_port("80/http").unwrap_err(),
            "invalid protocol \"http\" in EXPOSE 80/http: use tcp, udp or sctp"
        );
        assert_eq!(
            parse_port("70000").unwrap_err(),
            "invalid port \"70000\" in EXPOSE 70000: a port is a number from 0 to 65535"
        );
        assert_eq!(
            parse_port("90-80").unwrap_err(),
            "invalid port range 90-80 in EXPOSE 90-80: the range ends before it starts"
        );
    }

    #[test]
    fn chmod_modes() {
        assert_eq!(parse_chmod("755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(parse_chmod("0644"), Ok(Chmod::Octal(0o644)));
        assert_eq!(
            parse_chmod("u+x,go-w"),
            Ok(Chmod::Symbolic("u+x,go-w".into()))
        );
        assert_eq!(parse_chmod("a=rX"), Ok(Chmod::Symbolic("a=rX".into())));
        assert_eq!(
            parse_chmod("9z").unwrap_err(),
            "invalid chmod parameter: 9z. it should be octal string and between 0 and 07777, or a symbolic mode like u+x"
        );
        assert_eq!(
            parse_chmod("17777").unwrap_err(),
            "invalid chmod parameter: 17777. it should be octal string and between 0 and 07777"
        );
        assert!(parse_chmod("u").is_err());
    }

    #[test]
    fn signals_and_checksums() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-2", "sigkill"] {
            assert_eq!(check_signal(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_signal("SIGFOO"), Err("invalid signal: SIGFOO".into()));
        assert_eq!(check_signal("0"), Err("invalid signal: 0".into()));
        assert!(check_checksum(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert_eq!(
            check_checksum("md5:abc").unwrap_err(),
            "invalid checksum digest \"md5:abc\": the algorithm must be sha256, sha384 or sha512"
        );
    }
}
