//! `kiln images` and `kiln inspect`: reading images for people and scripts.

use super::ListFormat;
use crate::output::{out, outln};
use kiln_oci::Digest;
use kiln_store::{Descriptor, Store};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// What `kiln images` shows about one image.
struct Summary {
    created: Option<String>,
    size: Option<u64>,
}

fn summary(store: &Store, desc: &Descriptor) -> Summary {
    let created = config_of(store, desc)
        .ok()
        .and_then(|(_, _, c)| c.get("created")?.as_str().map(str::to_string));
    let size = store
        .image_blobs(desc)
        .ok()
        .map(|blobs| blobs.iter().map(|d| d.size).sum());
    Summary { created, size }
}

/// The manifest chosen for this host, its config digest, and the config.
fn config_of(store: &Store, desc: &Descriptor) -> anyhow::Result<(Descriptor, Digest, Value)> {
    let manifest = store.select_manifest(desc)?;
    let m: Value = serde_json::from_slice(&store.read_blob(&manifest.digest)?)?;
    let digest: Digest = serde_json::from_value(m["config"]["digest"].clone())?;
    let config = serde_json::from_slice(&store.read_blob(&digest)?)?;
    Ok((manifest, digest, config))
}

pub(super) fn images(store: &Store, format: ListFormat) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    let mut json_rows = Vec::new();
    for img in store.images()? {
        let s = summary(store, &img.descriptor);
        let (repo, tag) = match &img.reference {
            Some(r) => (r.familiar_name(), r.tag.clone().unwrap_or_default()),
            None => ("<none>".to_string(), "<none>".to_string()),
        };
        json_rows.push(json!({
            "Repository": repo,
            "Tag": tag,
            "Name": img.reference.as_ref().map(|r| r.to_string()),
            "Id": img.descriptor.digest,
            "Created": s.created,
            "Size": s.size,
        }));
        rows.push([
            repo,
            tag,
            img.descriptor.digest.hex()[..12].to_string(),
            s.created
                .as_deref()
                .and_then(parse_rfc3339)
                .map_or("N/A".to_string(), |t| ago(now - t)),
            s.size.map_or("N/A".to_string(), human_size),
        ]);
    }
    match format {
        ListFormat::Json => outln!("{}", serde_json::to_string_pretty(&json_rows)?),
        ListFormat::Table => out!("{}", table(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn inspect(store: &Store, input: &str) -> anyhow::Result<ExitCode> {
    let found = store.resolve(input)?;
    let desc = &found.descriptor;
    let (manifest_desc, config_digest, config) = config_of(store, desc)?;
    let manifest: Value = serde_json::from_slice(&store.read_blob(&manifest_desc.digest)?)?;
    let index: Option<Value> = if manifest_desc.digest != desc.digest {
        Some(serde_json::from_slice(&store.read_blob(&desc.digest)?)?)
    } else {
        None
    };
    let platform = match (config["os"].as_str(), config["architecture"].as_str()) {
        (Some(os), Some(arch)) => Some(format!("{os}/{arch}")),
        _ => None,
    };
    let out = json!({
        "Id": desc.digest,
        "RepoTags": found.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
        "MediaType": desc.media_type,
        "Size": store.image_blobs(desc)?.iter().map(|d| d.size).sum::<u64>(),
        "Platform": platform,
        "Index": index,
        "ManifestDigest": manifest_desc.digest,
        "Manifest": manifest,
        "ConfigDigest": config_digest,
        "Config": config,
    });
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// Columns separated by three spaces, like docker's tables.
pub(super) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Sizes as docker prints them: decimal units, three significant digits.
pub(super) fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < units.len() {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[unit])
}

/// "5 minutes ago", "3 days ago", … for an age in seconds.
pub(super) fn ago(secs: i64) -> String {
    let steps = [
        (365 * 86400, "year"),
        (30 * 86400, "month"),
        (7 * 86400, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ];
    for (len, name) in steps {
        let n = secs / len;
        if n >= 1 {
            let plural = if n == 1 { "" } else { "s" };
            return format!("{n} {name}{plural} ago");
        }
    }
    "Less than a minute ago".to_string()
}

/// Seconds since the epoch for an RFC 3339 time (`2024-01-02T03:04:05.6Z`,
/// `…+02:00`); `None` if it is not one.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil, Howard Hinnant's algorithm.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1234), "1.23kB");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_500_000), "12.5MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }

    #[test]
    fn times_parse_and_age() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-01-02T03:04:05.123456789Z"),
            Some(1704164645)
        );
        assert_eq!(parse_rfc3339("2024-01-02T05:04:05+02:00"), Some(1704164645));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(ago(30), "Less than a minute ago");
        assert_eq!(ago(3600), "1 hour ago");
        assert_eq!(ago(3 * 86400 + 5), "3 days ago");
        assert_eq!(ago(800 * 86400), "2 years ago");
    }

    #[test]
    fn table_pads_columns() {
        let rows = [
            [
                "A".to_string(),
                "BB".into(),
                "C".into(),
                "D".into(),
                "E".into(),
            ],
            [
                "aaa".to_string(),
                "b".into(),
                "c".into(),
                "d".into(),
                "".into(),
            ],
        ];
        assert_eq!(table(&rows), "A     BB   C   D   E\naaa   b    c   d\n");
    }
}
