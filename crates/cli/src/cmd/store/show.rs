//! `kiln images` and `kiln inspect`: reading images for people and scripts.

use super::ListFormat;
use crate::output::{out, outln};
use crate::template::Template;
use kiln_oci::reference::Reference;
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

/// What `kiln images` shows and of which images.
pub(super) struct ListArgs {
    /// `table`, `json` or a Go template.
    pub(super) format: String,
    /// Only the image ids (`-q`).
    pub(super) quiet: bool,
    /// A DIGEST column (`--digests`).
    pub(super) digests: bool,
    /// Full ids (`--no-trunc`).
    pub(super) no_trunc: bool,
    /// Only names matching `REPOSITORY[:TAG]`, wildcards allowed.
    pub(super) reference: Option<String>,
}

pub(super) fn images(store: &Store, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut header = vec!["REPOSITORY".to_string(), "TAG".into()];
    if args.digests {
        header.push("DIGEST".into());
    }
    header.extend(["IMAGE ID".into(), "CREATED".into(), "SIZE".into()]);
    let mut rows = vec![header];
    let mut json_rows = Vec::new();
    let mut template_rows = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for img in store.images()? {
        if let Some(pattern) = &args.reference {
            let matched = img
                .reference
                .as_ref()
                .is_some_and(|r| reference_matches(pattern, r));
            if !matched {
                continue;
            }
        }
        let s = summary(store, &img.descriptor);
        let (repo, tag) = match &img.reference {
            Some(r) => (r.familiar_name(), r.tag.clone().unwrap_or_default()),
            None => ("<none>".to_string(), "<none>".to_string()),
        };
        // docker's and podman's image id: the config's digest.
        let config = store
            .config_digest(&img.descriptor)
            .unwrap_or(img.descriptor.digest);
        let id = if args.no_trunc {
            config.to_string()
        } else {
            config.hex()[..12].to_string()
        };
        if !ids.contains(&id) {
            ids.push(id.clone());
        }
        json_rows.push(json!({
            "Repository": repo,
            "Tag": tag,
            "Name": img.reference.as_ref().map(|r| r.to_string()),
            "Id": img.descriptor.digest,
            "ImageId": config,
            "Created": s.created,
            "Size": s.size,
        }));
        let since = s
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or("N/A".to_string(), |t| ago(now - t));
        let size = s.size.map_or("N/A".to_string(), human_size);
        // docker's fields for `images --format`.
        template_rows.push(json!({
            "ID": id,
            "Repository": repo,
            "Tag": tag,
            "Digest": img.descriptor.digest,
            "CreatedAt": s.created.clone().unwrap_or_else(|| "N/A".into()),
            "CreatedSince": since,
            "Size": size,
        }));
        let mut row = vec![repo, tag];
        if args.digests {
            row.push(img.descriptor.digest.to_string());
        }
        row.extend([id, since, size]);
        rows.push(row);
    }
    if args.quiet {
        for id in ids {
            outln!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_str() {
        "json" => outln!("{}", serde_json::to_string_pretty(&json_rows)?),
        "table" => out!("{}", table(&rows)),
        text => {
            let template =
                Template::parse(text).map_err(|e| anyhow::anyhow!("--format {text:?}: {e}"))?;
            for row in &template_rows {
                let line = template
                    .render(row)
                    .map_err(|e| anyhow::anyhow!("--format {text:?}: {e}"))?;
                outln!("{line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// docker's reference filter: `REPOSITORY[:TAG]` with `*` and `?`
/// wildcards (which stop at `/`), the repository matched against the
/// familiar name (`busybox`) or the full one (`docker.io/library/busybox`),
/// every tag when the pattern has none.
fn reference_matches(pattern: &str, r: &Reference) -> bool {
    let (repo, tag) = match pattern.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (pattern, None),
    };
    let repo_ok = glob(repo, &r.familiar_name()) || glob(repo, &r.name());
    let tag_ok = tag.is_none_or(|t| glob(t, r.tag.as_deref().unwrap_or("latest")));
    repo_ok && tag_ok
}

/// Go's `path.Match` without character classes: `*` is any run of
/// characters but `/`, `?` one of them.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // The last `*` seen and where in `text` it started matching, to step
    // back to when a later character fails.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some('?') if t[ti] != '/' => {
                pi += 1;
                ti += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) if t[st] != '/' => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                _ => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `kiln inspect`: docker's array, one object per image, or `format`
/// applied to each (`--format`, see [`crate::template`]).
pub(super) fn inspect(
    store: &Store,
    inputs: &[String],
    format: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let template = format
        .map(crate::template::Template::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut all = Vec::new();
    for input in inputs {
        all.push(inspect_one(store, input)?);
    }
    match template {
        Some(t) => {
            for image in &all {
                outln!("{}", t.render(image).map_err(anyhow::Error::msg)?);
            }
        }
        None => outln!("{}", serde_json::to_string_pretty(&all)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// docker's fields (`Id` the config's digest, `Config` the container
/// config, …), then kiln's: `Digest` (the manifest's or index's, what
/// `kiln build` prints), `MediaType`, `Platform`, `Index`, `Manifest`,
/// `ManifestDigest`, `ConfigDigest` and `ImageConfig` (the whole config).
fn inspect_one(store: &Store, input: &str) -> anyhow::Result<Value> {
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
    let mut repo_digests: Vec<String> = found
        .tags
        .iter()
        .map(|t| format!("{}@{}", t.familiar_name(), desc.digest))
        .collect();
    repo_digests.dedup();
    let field = |name: &str| config.get(name).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "Id": config_digest,
        "RepoTags": found.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
        "RepoDigests": repo_digests,
        "Created": field("created"),
        "Author": config.get("author").cloned().unwrap_or(Value::String(String::new())),
        "Config": config.get("config").cloned().unwrap_or_else(|| json!({})),
        "Architecture": field("architecture"),
        "Variant": field("variant"),
        "Os": field("os"),
        "Size": store.image_blobs(desc)?.iter().map(|d| d.size).sum::<u64>(),
        "RootFS": field("rootfs"),
        "Digest": desc.digest,
        "MediaType": desc.media_type,
        "Platform": platform,
        "Index": index,
        "ManifestDigest": manifest_desc.digest,
        "Manifest": manifest,
        "ConfigDigest": config_digest,
        "ImageConfig": config,
    }))
}

/// `kiln history`: docker's table (IMAGE, CREATED, CREATED BY, SIZE,
/// COMMENT), newest step first, the image id on the top one; or the same
/// as JSON.
pub(super) fn history(
    store: &Store,
    input: &str,
    no_trunc: bool,
    format: ListFormat,
) -> anyhow::Result<ExitCode> {
    let found = store.resolve(input)?;
    let (manifest, config_digest, config) = config_of(store, &found.descriptor)?;
    let manifest: Value = serde_json::from_slice(&store.read_blob(&manifest.digest)?)?;
    let layer_sizes: Vec<u64> = manifest["layers"]
        .as_array()
        .map(|ls| ls.iter().filter_map(|l| l["size"].as_u64()).collect())
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Each step that made a layer takes the next one, bottom up.
    let mut layers = layer_sizes.into_iter();
    let mut steps: Vec<Value> = Vec::new();
    for h in config["history"].as_array().into_iter().flatten() {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty { 0 } else { layers.next().unwrap_or(0) };
        steps.push(json!({
            "Created": h["created"],
            "CreatedBy": h["created_by"].as_str().unwrap_or_default(),
            "Size": size,
            "Comment": h["comment"].as_str().unwrap_or_default(),
        }));
    }
    steps.reverse();
    if let Some(top) = steps.first_mut() {
        top["Id"] = json!(config_digest);
    }
    if matches!(format, ListFormat::Json) {
        outln!("{}", serde_json::to_string_pretty(&steps)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "IMAGE".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
    ]];
    for step in &steps {
        let id = match step["Id"].as_str() {
            Some(id) if no_trunc => id.to_string(),
            Some(id) => id.trim_start_matches("sha256:")[..12].to_string(),
            None => "<missing>".to_string(),
        };
        let created = step["Created"]
            .as_str()
            .and_then(parse_rfc3339)
            .map_or("N/A".to_string(), |t| ago(now - t));
        // docker cuts the command at 45 characters, newlines and all.
        let by = step["CreatedBy"].as_str().unwrap_or_default();
        let by = if no_trunc || by.chars().count() <= 45 {
            by.to_string()
        } else {
            format!("{}…", by.chars().take(44).collect::<String>())
        };
        rows.push([
            id,
            created,
            by.replace('\n', " "),
            human_size(step["Size"].as_u64().unwrap_or(0)),
            step["Comment"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    out!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// Columns separated by three spaces, like docker's tables.
pub(super) fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let row = row.as_ref();
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
    fn globs_like_go_path_match() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("b?sybox", "busybox"));
        assert!(glob("*", "busybox"));
        assert!(!glob("*", "team/app"));
        assert!(glob("*/app", "team/app"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b", "a/b"));
        assert!(!glob("busybox", "busybox2"));
    }

    #[test]
    fn reference_filters() {
        let r: Reference = "localhost:5000/team/app:v1".parse().unwrap();
        assert!(reference_matches("localhost:5000/team/app", &r));
        assert!(reference_matches("localhost:5000/team/app:v1", &r));
        assert!(reference_matches("localhost:5000/team/*:v?", &r));
        assert!(!reference_matches("localhost:5000/team/app:v2", &r));
        let b: Reference = "busybox".parse().unwrap();
        assert!(reference_matches("busybox", &b));
        assert!(reference_matches("busybox:latest", &b));
        assert!(reference_matches("docker.io/library/busybox", &b));
        assert!(!reference_matches("busy", &b));
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
