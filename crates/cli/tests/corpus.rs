//! The Dockerfile corpus (tests/corpus at the repository root): every case
//! is built by buildah (the reference) and by `kiln build`, both images are
//! unpacked with umoci, and the root file systems (paths, types, modes,
//! owners, content, symlink targets, xattrs, hard links; not mtimes) and the
//! config fields are compared. Where BuildKit and buildah differ, the case's
//! expect.json holds BuildKit's value, and kiln is held to it.
//!
//! `KILN_CORPUS_CASE=name[,name…]` runs only some cases.

mod corpus_support;

use corpus_support::case::{self, Case, Prepared};
use corpus_support::tools::{self, BuildRequest, Buildah};
use corpus_support::{config, drop_buildah_stubs, start_base, tree, Base};
use kiln_testsupport::base_images;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// What a build produced, in comparable form.
struct Image {
    tree: tree::Tree,
    config: BTreeMap<String, Value>,
}

fn request<'a>(
    case: &'a Case,
    p: &'a Prepared,
    dockerfile: &'a Path,
    base: &Base,
) -> BuildRequest<'a> {
    let mut build_args = vec![("BASE".to_string(), base.reference.clone())];
    if let Some(debian) = &base.debian {
        build_args.push(("DEBIAN".to_string(), debian.clone()));
    }
    build_args.extend(case.expect.build_args.clone());
    BuildRequest {
        context: &p.context,
        dockerfile,
        build_args,
        build_contexts: case
            .expect
            .build_contexts
            .iter()
            .map(|(k, v)| (k.clone(), p.context.join(v)))
            .collect(),
        target: case.expect.target.as_deref(),
        secrets: case
            .expect
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), case.dir.join(v)))
            .collect(),
    }
}

fn unpack(layout: &Path, bundle: &Path) -> Result<tree::Tree, String> {
    let rootfs = tools::umoci_unpack(layout, bundle)?;
    tree::scan(&rootfs)
}

/// buildah's image with the case's known BuildKit differences applied.
fn reference_image(
    case: &Case,
    buildah: &Buildah,
    p: &Prepared,
    base: &Base,
    work: &Path,
) -> Result<Image, String> {
    let layout = work.join("buildah-oci");
    let docker_config = buildah.build(
        &request(case, p, &p.buildah_dockerfile, base),
        &format!("corpus-{}", case.name),
        &layout,
    )?;
    let mut tree = unpack(&layout, &work.join("buildah-bundle"))?;
    drop_buildah_stubs(&mut tree, &p.buildah_dockerfile);
    for (path, node) in &case.expect.paths {
        match node {
            None => {
                tree.remove(path);
            }
            Some(v) => {
                tree.insert(path.clone(), tree::Node::from_json(path, v)?);
            }
        }
    }
    let mut config = config::normalize(&docker_config);
    config::apply_overrides(&mut config, &case.expect.config);
    Ok(Image { tree, config })
}

fn kiln_image(
    case: &Case,
    store: &Path,
    host: &str,
    p: &Prepared,
    base: &Base,
    work: &Path,
) -> Result<Image, String> {
    let layout = work.join("kiln-oci");
    tools::kiln_build(
        Path::new(env!("CARGO_BIN_EXE_kiln")),
        store,
        host,
        &request(case, p, &p.dockerfile, base),
        &layout,
        &[],
    )?;
    let tree = unpack(&layout, &work.join("kiln-bundle"))?;
    let image_config = tools::image_config(&layout)?;
    Ok(Image {
        tree,
        config: config::normalize(&image_config["config"]),
    })
}

fn selected(cases: Vec<Case>) -> Vec<Case> {
    match std::env::var("KILN_CORPUS_CASE") {
        Ok(names) if !names.is_empty() => {
            let names: Vec<&str> = names.split(',').collect();
            cases
                .into_iter()
                .filter(|c| names.contains(&c.name.as_str()))
                .collect()
        }
        _ => cases,
    }
}

/// Whether a case builds on the Debian base (`FROM $DEBIAN`).
fn uses_debian(case: &Case) -> bool {
    std::fs::read_to_string(case.dir.join("Dockerfile")).is_ok_and(|d| d.contains("$DEBIAN"))
}

#[test]
fn corpus_matches_buildah() {
    let all = case::load_all().unwrap();
    assert!(all.len() >= 30, "the corpus has only {} cases", all.len());
    let cases = selected(all);
    let base = start_base(cases.iter().any(uses_debian));
    let host = base.registry.host();
    let work = tempfile::tempdir().unwrap();
    let mut prepared = Vec::new();
    for c in &cases {
        let dir = work.path().join(&c.name);
        std::fs::create_dir(&dir).unwrap();
        let p = case::prepare(c, &dir.join("context"), &base.reference)
            .unwrap_or_else(|e| panic!("preparing case {}: {e}", c.name));
        prepared.push((c, p, dir));
    }

    let buildah = Buildah::new();
    let store = work.path().join("kiln-store");
    // The two builders run side by side, each through its cases in order.
    let (references, kilns) = std::thread::scope(|s| {
        let r = s.spawn(|| {
            prepared
                .iter()
                .map(|(c, p, dir)| reference_image(c, &buildah, p, &base, dir))
                .collect::<Vec<_>>()
        });
        let k = s.spawn(|| {
            prepared
                .iter()
                .map(|(c, p, dir)| kiln_image(c, &store, &host, p, &base, dir))
                .collect::<Vec<_>>()
        });
        (r.join().unwrap(), k.join().unwrap())
    });

    let mut report = String::new();
    let mut failed = Vec::new();
    for (((c, _, _), reference), kiln) in prepared.iter().zip(references).zip(kilns) {
        let problems = match (reference, kiln) {
            (Err(e), _) => vec![format!("reference build failed (a corpus bug): {e}")],
            (Ok(_), Err(e)) => vec![format!("kiln build failed: {e}")],
            (Ok(want), Ok(got)) => {
                let mut d = tree::diff(&want.tree, &got.tree);
                d.extend(config::diff(&want.config, &got.config));
                d
            }
        };
        if problems.is_empty() {
            report.push_str(&format!("PASS {}\n", c.name));
        } else {
            report.push_str(&format!("FAIL {}\n", c.name));
            for p in &problems {
                for line in p.lines() {
                    report.push_str(&format!("    {line}\n"));
                }
            }
            failed.push(c.name.clone());
        }
    }
    println!("{report}");
    assert!(
        failed.is_empty(),
        "{} of {} corpus cases differ from the reference: {}\n{report}",
        failed.len(),
        prepared.len(),
        failed.join(", ")
    );
}

/// The entries' mtimes of one layer blob of `layout`.
fn layer_mtimes(layout: &Path, layer: &Value) -> Vec<(String, u64)> {
    let digest = layer["digest"].as_str().unwrap();
    let blob = tools::read_blob(layout, digest).unwrap();
    let reader: Box<dyn std::io::Read> = match layer["mediaType"].as_str().unwrap() {
        "application/vnd.oci.image.layer.v1.tar+gzip" => {
            Box::new(flate2::read::GzDecoder::new(&blob[..]))
        }
        "application/vnd.oci.image.layer.v1.tar" => Box::new(&blob[..]),
        other => panic!("layer {digest} has media type {other}, which this test cannot read"),
    };
    let mut archive = tar::Archive::new(reader);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, e.header().mtime().unwrap())
        })
        .collect()
}

/// Two builds of the same case give the same manifest digest; with
/// SOURCE_DATE_EPOCH every file time in kiln's layers is clamped to it,
/// `created` is it, and touching the context changes nothing.
#[test]
fn kiln_builds_are_reproducible() {
    let base = start_base(false);
    let host = base.registry.host();
    let c = case::load(&case::corpus_dir().join("copy-dir-tree")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let p = case::prepare(&c, &work.path().join("context"), &base.reference).unwrap();
    let req = request(&c, &p, &p.dockerfile, &base);
    let kiln = Path::new(env!("CARGO_BIN_EXE_kiln"));
    // A fresh store for every build, so nothing is reused between them.
    let build = |name: &str, env: &[(&str, &str)]| {
        let layout = work.path().join(name);
        let store = work.path().join(format!("{name}-store"));
        tools::kiln_build(kiln, &store, &host, &req, &layout, env).unwrap();
        layout
    };

    // Without SOURCE_DATE_EPOCH `created` is the wall-clock second of the
    // build (as BuildKit), so two builds agree only when they share it;
    // the epoch pins it, and then two cold builds must agree exactly.
    const EPOCH: u64 = 1_700_000_000;
    let sde = [("SOURCE_DATE_EPOCH", "1700000000")];
    let clamped = build("epoch", &sde);
    let second = build("epoch-second", &sde);
    assert_eq!(
        tools::manifest(&clamped).unwrap().0,
        tools::manifest(&second).unwrap().0
    );
    let config = tools::image_config(&clamped).unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let (digest, manifest) = tools::manifest(&clamped).unwrap();
    let base_layers = tools::manifest(&base_images().busybox).unwrap().1["layers"]
        .as_array()
        .unwrap()
        .len();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers + 3, "one layer per COPY");
    for layer in &layers[base_layers..] {
        let mtimes = layer_mtimes(&clamped, layer);
        assert!(!mtimes.is_empty());
        // The context was written moments ago, so every time is clamped.
        let wrong: Vec<_> = mtimes.iter().filter(|(_, t)| *t != EPOCH).collect();
        assert!(wrong.is_empty(), "mtimes not clamped to {EPOCH}: {wrong:?}");
    }

    // Later file times in the context do not change a clamped build.
    let touched = std::process::Command::new("find")
        .arg(&p.context)
        .args(["-exec", "touch", "-h", "-d", "@1900000000", "{}", "+"])
        .status()
        .unwrap();
    assert!(touched.success());
    let again = build("epoch-again", &sde);
    assert_eq!(tools::manifest(&again).unwrap().0, digest);
}
