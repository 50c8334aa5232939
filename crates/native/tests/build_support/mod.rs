//! Shared helpers of the engine's build tests: a store and context in a
//! tempdir, a build call, and readers for what a build wrote.
#![allow(dead_code)]

use kiln_backend::BuildBackend;
use kiln_backend::{BuildError, BuildEvent, BuildRequest, BuiltImage, Dockerfile, EventSink};
use kiln_native::NativeBackend;
use kiln_registry::{AuthFiles, ClientOptions};
use kiln_store::{Descriptor, Store};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A store and a build context in one tempdir.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub backend: NativeBackend,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        // Credentials from the test's own directory, never the user's.
        let mut opts = ClientOptions::new(AuthFiles::docker_and_containers(
            dir.path(),
            None,
            None,
            None,
        ));
        opts.retries = 0;
        opts.timeout = Duration::from_secs(5);
        Env {
            backend: NativeBackend::new(store, opts),
            dir,
        }
    }

    /// Like [`Env::new`], trusting `host` over plain HTTP.
    pub fn with_registry(host: &str) -> Env {
        let env = Env::new();
        let store = Store::open(env.dir.path().join("store")).unwrap();
        let mut opts = ClientOptions::new(AuthFiles::docker_and_containers(
            env.dir.path(),
            None,
            None,
            None,
        ));
        opts.insecure_registries.push(host.to_string());
        opts.retries = 0;
        Env {
            backend: NativeBackend::new(store, opts),
            dir: env.dir,
        }
    }

    pub fn store(&self) -> &Store {
        self.backend.store()
    }

    pub fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file into the build context.
    pub fn file(&self, rel: &str, contents: &str) -> &Env {
        let p = self.ctx().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        self
    }

    pub fn request(&self, dockerfile: &str) -> BuildRequest {
        BuildRequest::new(
            Dockerfile {
                name: "Dockerfile".into(),
                bytes: dockerfile.as_bytes().to_vec(),
                path: None,
            },
            Some(self.ctx()),
        )
    }

    pub fn run(&self, req: &BuildRequest) -> Result<BuiltImage, BuildError> {
        self.backend.build(req, &EventSink::discard())
    }

    pub fn build(&self, dockerfile: &str) -> BuiltImage {
        self.run(&self.request(dockerfile))
            .unwrap_or_else(|e| panic!("build failed:\n{e}"))
    }

    /// Builds and returns the events too.
    pub fn build_events(
        &self,
        req: &BuildRequest,
    ) -> (Result<BuiltImage, BuildError>, Vec<BuildEvent>) {
        let (sink, rx) = EventSink::channel();
        let result = self.backend.build(req, &sink);
        drop(sink);
        (result, rx.iter().collect())
    }

    pub fn json(&self, d: &Descriptor) -> Value {
        serde_json::from_slice(&self.store().read_blob(&d.digest).unwrap()).unwrap()
    }

    pub fn manifest(&self, built: &BuiltImage) -> Value {
        self.json(&built.manifest)
    }

    pub fn config(&self, built: &BuiltImage) -> Value {
        self.json(&built.config)
    }

    /// The layers of an image, each as its entries.
    pub fn layers(&self, built: &BuiltImage) -> Vec<Vec<Entry>> {
        let m = self.manifest(built);
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let d: Descriptor = serde_json::from_value(l.clone()).unwrap();
                read_layer(&self.store().blob_path(&d.digest))
            })
            .collect()
    }

    /// The store's image list, for "nothing was written" checks.
    pub fn images(&self) -> Vec<String> {
        self.store()
            .images()
            .unwrap()
            .iter()
            .map(|i| format!("{} {:?}", i.descriptor.digest, i.reference))
            .collect()
    }
}

/// Makes `bb` name the busybox base (`scripts/make-base-images`) in `req`,
/// as `--build-context bb=oci-layout://…:latest` does.
pub fn with_busybox(mut req: BuildRequest) -> BuildRequest {
    req.build_contexts.insert(
        "bb".into(),
        kiln_backend::NamedContext::OciLayout {
            path: kiln_testsupport::base_images().busybox.clone(),
            reference: Some("latest".into()),
        },
    );
    req
}

/// One tar entry: `path type mode uid:gid mtime` plus the contents of a file
/// or the target of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: String,
    pub data: String,
}

pub fn read_layer(path: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(path).unwrap();
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd_decode(&bytes)
    } else {
        bytes
    };
    read_tar(&raw)
}

fn zstd_decode(bytes: &[u8]) -> Vec<u8> {
    let out = std::process::Command::new("zstd")
        .args(["-d", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("zstd (apt-get install zstd)");
    out.stdout
}

pub fn read_tar(raw: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(raw);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            _ => "other",
        };
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let mut data = String::new();
        if kind == "file" {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            data = String::from_utf8_lossy(&bytes).into_owned();
        } else if let Some(t) = e.link_name().unwrap() {
            data = t.to_string_lossy().into_owned();
        }
        out.push(Entry {
            line: format!(
                "{path} {kind} {:o} {}:{} {}",
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap()
            ),
            data,
        });
    }
    out
}

/// Just the header lines of a layer.
pub fn lines(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.line.clone()).collect()
}

/// The history's `created_by` texts, with `(empty)` marking entries
/// without a layer.
pub fn history(config: &Value) -> Vec<String> {
    config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let by = h["created_by"].as_str().unwrap().to_string();
            if h["empty_layer"] == Value::Bool(true) {
                format!("{by} (empty)")
            } else {
                by
            }
        })
        .collect()
}

/// Asserts the store has no problems.
pub fn assert_fsck_clean(store: &Store) {
    let report = store.fsck().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
