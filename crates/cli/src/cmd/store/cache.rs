//! The build cache's part of `kiln du`, `kiln prune` and `kiln fsck`.

use super::show::{ago, human_size, table};
use crate::output::{out, outln};
use anyhow::{bail, Context};
use kiln_cache::{Cache, PruneFilter};
use kiln_oci::Digest;
use kiln_store::Store;
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::SystemTime;

fn open(store: &Store) -> anyhow::Result<Cache> {
    kiln_native::open_cache_index(store.root()).with_context(|| {
        format!(
            "cannot open the build cache of the store at {}",
            store.root().display()
        )
    })
}

/// `kiln prune`: build cache records as `filter` selects, then every blob
/// that neither an image nor a remaining record uses.
pub(super) fn prune(store: &Store, filter: &PruneFilter) -> anyhow::Result<ExitCode> {
    let cache = open(store)?;
    let report = cache.prune(filter)?;
    let gc = store.gc_keeping(|| {
        cache
            .referenced_blobs()
            .map(|blobs| blobs.into_iter().collect::<HashSet<Digest>>())
    })?;
    // The saved headers of layers GC just removed go with them.
    kiln_native::imagefs::prune_saved_headers(store);
    if !report.removed.is_empty() {
        outln!(
            "Deleted {} build cache records ({} layers no record uses any more)",
            report.removed.len(),
            report.freed_blobs.len()
        );
    }
    outln!(
        "Deleted {} blobs; reclaimed {} ({} bytes)",
        gc.removed_blobs,
        human_size(gc.reclaimed_bytes),
        gc.reclaimed_bytes
    );
    if gc.kept_in_flight > 0 {
        outln!(
            "Kept {} unused blobs that another kiln process may be about to use; \
             run `kiln prune` again when it has finished",
            gc.kept_in_flight
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The prune filter of `kiln prune [--all] [--filter until=D] [--keep-storage S]`.
pub(super) fn prune_filter(
    all: bool,
    filters: &[String],
    keep_storage: Option<&str>,
) -> anyhow::Result<PruneFilter> {
    let mut filter = PruneFilter {
        all,
        ..PruneFilter::default()
    };
    for f in filters {
        match f.split_once('=') {
            Some(("until", age)) => {
                let age = kiln_frontend::instructions::parse_duration(age)
                    .map_err(|e| anyhow::anyhow!("--filter {f}: {e}"))?;
                let until = SystemTime::now()
                    .checked_sub(age)
                    .with_context(|| format!("--filter {f}: the duration is too long"))?;
                filter.until = Some(filter.until.map_or(until, |u| u.max(until)));
            }
            _ => bail!("--filter {f}: kiln prune takes until=DURATION (like until=24h)"),
        }
    }
    if let Some(size) = keep_storage {
        filter.keep_bytes =
            Some(parse_size(size).map_err(|e| anyhow::anyhow!("--keep-storage: {e}"))?);
    }
    Ok(filter)
}

/// A size as docker's flags take it: a number with an optional unit, `b`,
/// `k`, `m`, `g` or `t` (with or without `b` or `ib`, any case), every unit
/// a power of 1024.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {text:?}: use a number and a unit, like 512MB or 10GB");
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    Ok((value * (1u64 << shift) as f64) as u64)
}

/// `kiln du`: the build cache records that hold a layer (with `verbose`,
/// every record), most recently used first, then what the cache and the
/// store hold.
pub(super) fn du(
    store: &Store,
    run_leftovers: &kiln_native::Reclaimed,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    let cache = open(store)?;
    let entries = cache.entries()?;
    let (image_blobs, store_bytes) = store.usage()?;
    let now = SystemTime::now();
    let age = |t: SystemTime| ago(now.duration_since(t).map_or(0, |d| d.as_secs() as i64));
    let mut rows = vec![[
        "ID".to_string(),
        "SIZE".to_string(),
        "LAST USED".to_string(),
        "STEP".to_string(),
    ]];
    for e in entries.iter().filter(|e| verbose || e.blob.is_some()) {
        let hex = e.key.to_string();
        let id = hex.trim_start_matches("sha256:");
        let size = match e.blob {
            Some(_) if e.shared => format!("{}*", human_size(e.size)),
            Some(_) => human_size(e.size),
            None => "0B".to_string(),
        };
        let step = if verbose {
            e.description.clone()
        } else {
            shorten(&e.description, 60)
        };
        rows.push([
            if verbose {
                id.to_string()
            } else {
                id[..12].to_string()
            },
            size,
            age(e.last_used),
            step,
        ]);
    }
    out!("{}", table(&rows));
    let mut layers: Vec<(Digest, u64)> = entries
        .iter()
        .filter_map(|e| e.blob.map(|b| (b, e.size)))
        .collect();
    layers.sort();
    layers.dedup();
    let total: u64 = layers.iter().map(|l| l.1).sum();
    let only_cache: u64 = layers
        .iter()
        .filter(|l| !image_blobs.contains(&l.0))
        .map(|l| l.1)
        .sum();
    outln!();
    outln!(
        "Build cache: {} records, {} layers, {} ({} used by no image; `kiln prune --all` frees it)",
        entries.len(),
        layers.len(),
        human_size(total),
        human_size(only_cache)
    );
    outln!("Store: {} in blobs", human_size(store_bytes));
    let in_flight = store.in_flight();
    outln!(
        "In flight: {} in the temporary files of {} running kiln processes",
        human_size(in_flight.bytes),
        in_flight.leases
    );
    let reclaimed = store.reclaimed();
    let bytes = reclaimed.bytes + run_leftovers.snapshot_bytes;
    if bytes > 0 || reclaimed.leases > 0 || !run_leftovers.containers.is_empty() {
        outln!(
            "Reclaimed just now: {} ({bytes} bytes) left by {} killed kiln processes \
             ({} in temporary files, {} in RUN snapshots; {} RUN containers stopped)",
            human_size(bytes),
            reclaimed.leases,
            human_size(reclaimed.bytes),
            human_size(run_leftovers.snapshot_bytes),
            run_leftovers.containers.len()
        );
    }
    if entries.iter().any(|e| e.shared) {
        outln!("* the layer is shared with other records");
    }
    Ok(ExitCode::SUCCESS)
}

fn shorten(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() > max {
        format!("{}…", first.chars().take(max - 1).collect::<String>())
    } else {
        first.to_string()
    }
}

/// The build cache's problems for `kiln fsck`, and a note on records
/// whose layers are gone (not a problem: those steps just run again).
pub(super) fn fsck(store: &Store) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let cache = open(store)?;
    let problems = cache
        .check()?
        .into_iter()
        .map(|p| format!("build cache: {p}"))
        .collect();
    let gone = cache
        .referenced_blobs()?
        .iter()
        .filter(|d| !store.has_blob(d))
        .count();
    let notes = if gone > 0 {
        vec![format!(
            "build cache: {gone} layers it names are no longer in the store; \
             the steps that made them run again when next built"
        )]
    } else {
        Vec::new()
    };
    Ok((problems, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker_flags_do() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("10k").unwrap(), 10 << 10);
        assert_eq!(parse_size("1.5GB").unwrap(), 3 << 29);
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("1t").unwrap(), 1 << 40);
        assert!(parse_size("ten")
            .unwrap_err()
            .contains("invalid size \"ten\""));
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn prune_filters_take_until_and_reject_anything_else() {
        let f = prune_filter(false, &["until=24h".into()], Some("1g")).unwrap();
        let age = SystemTime::now().duration_since(f.until.unwrap()).unwrap();
        assert!((86399..=86401).contains(&age.as_secs()));
        assert_eq!(f.keep_bytes, Some(1 << 30));
        assert!(!f.all);
        let e = prune_filter(false, &["label=x".into()], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--filter label=x: kiln prune takes until=DURATION (like until=24h)"
        );
        let e = prune_filter(false, &["until=soon".into()], None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--filter until=soon: invalid duration"),
            "{e}"
        );
    }
}
