//! `--cache-to` and `--cache-from`: a build's steps written to a registry
//! (through a real docker-registry) or an OCI layout, and a clean store
//! taking them from there, fetching only the layers it replays.

mod build_support;

use build_support::*;
use kiln_backend::{BuildEvent, BuildRequest, CacheExport, CacheLocation, CacheMode};
use kiln_testsupport::{Proxy, Registry};

const EPOCH: i64 = 1_700_000_000;

/// Incompressible bytes, so a layer's size says which file it holds.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

const MULTI: &str = "FROM scratch AS build\nCOPY big.bin /big.bin\nCOPY src /src\n\
                     FROM scratch\nCOPY --from=build /src /app\nCOPY top.txt /\n";

fn context(env: &Env) {
    std::fs::write(env.ctx().join("big.bin"), noise(300_000, 7)).unwrap();
    env.file("src/main.txt", "main\n").file("top.txt", "top\n");
}

fn request(env: &Env, cache_to: Vec<CacheExport>, cache_from: Vec<CacheLocation>) -> BuildRequest {
    let mut req = env.request(MULTI);
    req.source_date_epoch = Some(EPOCH);
    req.cache_to = cache_to;
    req.cache_from = cache_from;
    req
}

/// (stage, index) of the steps taken from the cache, and the warnings.
fn cached(env: &Env, req: &BuildRequest) -> (String, Vec<(usize, usize)>, Vec<String>) {
    let (built, events) = env.build_events(req);
    let built = built.unwrap_or_else(|e| panic!("build failed:\n{e}"));
    let mut hits = Vec::new();
    let mut warnings = Vec::new();
    for e in events {
        // A multi-platform build's events come wrapped per platform.
        let e = match e {
            BuildEvent::Platform { event, .. } => *event,
            e => e,
        };
        match e {
            BuildEvent::InstructionComplete {
                stage,
                index,
                cached: true,
            } => hits.push((stage, index)),
            BuildEvent::Warning { message, .. } => warnings.push(message),
            _ => {}
        }
    }
    (built.manifest.digest.to_string(), hits, warnings)
}

/// The hex digest of the biggest blob in the store: big.bin's layer.
fn largest_blob(env: &Env) -> String {
    std::fs::read_dir(env.path("store/content/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned()
}

fn blob_count(env: &Env) -> usize {
    std::fs::read_dir(env.path("store/content/blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn a_local_cache_gives_a_clean_store_every_step_of_the_image() {
    let first = Env::new();
    context(&first);
    let dir = first.path("shared-cache");
    let to = CacheExport {
        location: CacheLocation::Local(dir.clone()),
        mode: CacheMode::Min,
    };
    let (id, hits, _) = cached(&first, &request(&first, vec![to], vec![]));
    assert!(hits.is_empty());
    // An OCI layout holding one kiln cache manifest.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["artifactType"],
        kiln_backend::ARTIFACT_TYPE
    );
    assert!(dir.join("oci-layout").is_file());

    // Another machine: a clean store, the same context elsewhere.
    let second = Env::new();
    context(&second);
    let from = vec![CacheLocation::Local(dir.clone())];
    let (id2, hits, warnings) = cached(&second, &request(&second, vec![], from.clone()));
    assert!(warnings.is_empty(), "{warnings:?}");
    // mode=min: the final stage's steps hit; the build stage's were not
    // written, so they ran.
    assert_eq!(hits, [(1, 1), (1, 2)]);
    assert_eq!(id2, id);
    // The records are now local: a third build needs no --cache-from.
    let (_, hits, _) = cached(&second, &request(&second, vec![], vec![]));
    assert_eq!(hits, [(0, 1), (0, 2), (1, 1), (1, 2)]);
}

#[test]
fn a_registry_cache_with_mode_max_serves_every_stage_and_only_needed_layers_are_pulled() {
    let registry = Registry::start();
    let proxy = Proxy::start(registry.port(), vec![]);
    let host = proxy.host();
    let cache_ref: kiln_oci::reference::Reference =
        format!("{host}/app:buildcache").parse().unwrap();
    let first = Env::with_registry(&host);
    context(&first);
    let to = CacheExport {
        location: CacheLocation::Registry(cache_ref.clone()),
        mode: CacheMode::Max,
    };
    let (id, _, _) = cached(&first, &request(&first, vec![to], vec![]));

    let second = Env::with_registry(&host);
    context(&second);
    let before = proxy.requests().len();
    let from = vec![CacheLocation::Registry(cache_ref.clone())];
    let (id2, hits, warnings) = cached(&second, &request(&second, vec![], from));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(hits, [(0, 1), (0, 2), (1, 1), (1, 2)]);
    assert_eq!(id2, id);
    let requests = proxy.requests()[before..].to_vec();
    let blob_gets: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/"))
        .collect();
    // The cache config, then the final image's two layers; big.bin's
    // layer, only in the build stage, is never pulled.
    assert_eq!(blob_gets.len(), 3, "{requests:#?}");
    let big = largest_blob(&first);
    assert!(!blob_gets.iter().any(|r| r.contains(&big)), "{requests:#?}");
    assert!(blob_count(&second) < blob_count(&first));
    // Only the hits whose layers came along were recorded locally: every
    // layer the local index names is in the store.
    let index = kiln_native::open_cache_index(second.store().root()).unwrap();
    for blob in index.referenced_blobs().unwrap() {
        assert!(second.store().has_blob(&blob), "{blob} named but absent");
    }
    // Without the shared cache, the final stage still hits locally; the
    // build stage, whose layers never came, runs.
    let (id3, hits, _) = cached(&second, &request(&second, vec![], vec![]));
    assert_eq!(hits, [(1, 1), (1, 2)]);
    assert_eq!(id3, id);
}

#[test]
fn a_cache_that_cannot_be_read_is_a_warning_and_the_build_goes_on() {
    let env = Env::new();
    context(&env);
    let missing = env.path("no-such-cache");
    let (_, hits, warnings) = cached(
        &env,
        &request(&env, vec![], vec![CacheLocation::Local(missing.clone())]),
    );
    assert!(hits.is_empty());
    assert_eq!(
        warnings,
        [format!(
            "cannot read the cache {}: {}: no such directory",
            missing.display(),
            missing.display()
        )]
    );
}

#[test]
fn a_corrupt_layer_in_a_local_cache_is_a_miss_not_a_bad_image() {
    let first = Env::new();
    context(&first);
    let dir = first.path("shared-cache");
    let to = CacheExport {
        location: CacheLocation::Local(dir.clone()),
        mode: CacheMode::Max,
    };
    let (id, _, _) = cached(&first, &request(&first, vec![to], vec![]));
    // Damage every layer blob in the cache (the config and manifest stay).
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut bad = bytes.clone();
            let n = bad.len();
            bad[n / 2] ^= 0xff;
            std::fs::write(&p, bad).unwrap();
        }
    }
    let second = Env::new();
    context(&second);
    let (id2, _, warnings) = cached(
        &second,
        &request(&second, vec![], vec![CacheLocation::Local(dir)]),
    );
    // The records are taken, the first layer fetched turns out corrupt,
    // and the build runs again without the cache.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("has digest"), "{warnings:?}");
    assert!(
        warnings[0].ends_with("; building again without --cache-from"),
        "{warnings:?}"
    );
    assert_eq!(id2, id);
    let fsck = second.store().fsck().unwrap();
    assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
}

#[test]
fn a_shared_cache_of_a_multi_platform_build_holds_every_platform() {
    use kiln_frontend::stages::Platform;
    let first = Env::new();
    first.file("f.txt", "f\n");
    let dir = first.path("shared-cache");
    let dockerfile = "FROM scratch\nARG TARGETARCH\nCOPY f.txt /f-$TARGETARCH\n";
    let platforms = vec![
        Platform::parse("linux/amd64").unwrap(),
        Platform::parse("linux/arm64").unwrap(),
    ];
    let mut req = first.request(dockerfile);
    req.source_date_epoch = Some(EPOCH);
    req.platforms = platforms.clone();
    req.cache_to = vec![CacheExport {
        location: CacheLocation::Local(dir.clone()),
        mode: CacheMode::Min,
    }];
    let (id, _, _) = cached(&first, &req);
    let second = Env::new();
    second.file("f.txt", "f\n");
    let mut req = second.request(dockerfile);
    req.source_date_epoch = Some(EPOCH);
    req.platforms = platforms;
    req.cache_from = vec![CacheLocation::Local(dir)];
    let (id2, mut hits, _) = cached(&second, &req);
    // Both platforms' COPY (and ARG) steps: neither overwrote the other's.
    // (The platforms build at once, so their events interleave.)
    hits.sort();
    assert_eq!(hits, [(0, 1), (0, 1), (0, 2), (0, 2)]);
    assert_eq!(id2, id);
}
