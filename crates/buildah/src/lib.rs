//! The buildah backend: builds, names, pushes and gathers images by
//! running the `buildah` command, with its own storage under kiln's root
//! (never the user's containers storage), and brings each build's image
//! into kiln's store so `kiln images` and `kiln push` see it.
//!
//! buildah runs with `--runtime runc` unless the request names another:
//! buildah prefers crun where both are installed, and crun 1.8 fails on
//! hosts with cgroups v1 in hybrid mode, where runc works. Its storage uses
//! the vfs driver, which needs no overlay mounts and so works wherever
//! kiln's root is (also inside a container), at the price of a full copy
//! per layer. Without `--layers` (see `bud_args` for why) a stage's steps
//! become one layer over its base's. Registries marked insecure for kiln
//! are written into a `registries.conf` of buildah's own, so buildah
//! reaches the registries kiln does (except loopback ones kiln reaches
//! over plain HTTP unlisted: buildah needs them listed).
#![deny(missing_docs)]

mod progress;

use kiln_backend::store_images;
use kiln_backend::{BuildBackend, BuildError, BuildRequest, BuiltImage, NamedContext, Pushed};
use kiln_backend::{BuildEvent, EventSink, Output, PullPolicy, SecretSource, Unavailable};
use kiln_oci::reference::Reference;
use kiln_oci::{parse_manifest, Compression, Digest, ImageOs, Parsed};
use kiln_registry::ClientOptions;
use kiln_store::{ArchiveImage, Store};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The program run: Debian's `buildah` package installs it on PATH.
const PROGRAM: &str = "buildah";

/// How many arguments [`BuildahBackend::command`] starts with.
const STORAGE_ARGS: usize = 6;

/// Builds by running `buildah bud`; see the module docs.
#[derive(Debug)]
pub struct BuildahBackend {
    store: Store,
    registry: ClientOptions,
    dir: PathBuf,
}

impl BuildahBackend {
    /// A backend keeping buildah's storage in `buildah/` under the root of
    /// `store`, which receives the images it builds; `registry` says which
    /// registries are insecure.
    pub fn new(store: Store, registry: ClientOptions) -> BuildahBackend {
        let dir = store.root().join("buildah");
        BuildahBackend {
            store,
            registry,
            dir,
        }
    }

    /// `buildah` with kiln's storage and registries.
    fn command(&self) -> Result<Command, BuildError> {
        let conf = self.write_registries_conf()?;
        let mut cmd = Command::new(PROGRAM);
        cmd.arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "vfs"])
            .env("CONTAINERS_REGISTRIES_CONF", conf)
            .stdin(Stdio::null());
        Ok(cmd)
    }

    /// Short names resolve on docker.io, as kiln's do; kiln's insecure
    /// registries are insecure for buildah too. Written by rename, as
    /// several kiln processes may start buildah at once.
    fn write_registries_conf(&self) -> Result<PathBuf, BuildError> {
        let mut text = String::from(
            "unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"permissive\"\n",
        );
        for host in &self.registry.insecure_registries {
            text.push_str(&format!(
                "\n[[registry]]\nlocation = {host:?}\ninsecure = true\n"
            ));
        }
        let path = self.dir.join("registries.conf");
        let io = |e: std::io::Error| BuildError::Output {
            path: path.clone(),
            source: e,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(path);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(path)
    }

    /// `--tls-verify=false` when kiln verifies no registry's certificate.
    fn tls_args(&self) -> &'static [&'static str] {
        if self.registry.tls_verify {
            &[]
        } else {
            &["--tls-verify=false"]
        }
    }

    /// [`Self::tls_args`], and `--tls-verify=false` when `dest` is on an
    /// insecure registry: buildah 1.28's push and manifest commands verify
    /// TLS whatever registries.conf says.
    fn tls_args_for(&self, dest: &Reference) -> &'static [&'static str] {
        if self.registry.insecure_registries.contains(&dest.registry) {
            &["--tls-verify=false"]
        } else {
            self.tls_args()
        }
    }

    /// Runs a short buildah command to its end; its error as buildah
    /// wrote it.
    fn run(&self, cmd: &mut Command) -> Result<(), BuildError> {
        let out = cmd.output().map_err(|e| not_found(&e))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("Error: "))
            .unwrap_or(stderr.trim());
        // The arguments after kiln's storage options: `tag a b`, `push …`.
        let what: Vec<String> = cmd
            .get_args()
            .skip(STORAGE_ARGS)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Err(BuildError::Request(format!(
            "`buildah {}` failed: {message}",
            what.join(" ")
        )))
    }

    /// The image buildah knows as `input`: a name, normalized as kiln
    /// normalizes it (`img` is `docker.io/library/img:latest`), or an id.
    fn image_name(input: &str) -> String {
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        if hex.len() >= 12 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return input.to_string();
        }
        Reference::parse(input).map_or_else(|_| input.to_string(), |r| r.to_string())
    }

    /// Refuses what buildah cannot do for `req`, naming the flag.
    fn check_request(req: &BuildRequest) -> Result<(), BuildError> {
        let refuse = |flag: &str, why: &str| {
            Err(BuildError::NotSupported(format!(
                "NotSupported: {flag} with --backend buildah: {why}; build with --backend native"
            )))
        };
        if req.platforms.len() > 1 {
            return refuse(
                "--platform with several platforms",
                "kiln drives buildah one platform at a time",
            );
        }
        if let Some(p) = req
            .platform
            .as_ref()
            .filter(|p| p.image_os() != ImageOs::Linux)
        {
            return refuse(
                &format!("--platform {p}"),
                "buildah builds Linux images only (a Windows image with RUN needs a Windows host)",
            );
        }
        if !req.no_cache_filter.is_empty() {
            return refuse(
                "--no-cache-filter",
                "buildah 1.28 has no per-stage cache control",
            );
        }
        if !req.cache_from.is_empty() || !req.cache_to.is_empty() {
            return refuse(
                "--cache-from/--cache-to",
                "buildah 1.28's cache lives only in its own storage",
            );
        }
        if req.compression != Compression::default() {
            return refuse(
                "--compression/--compression-level",
                "kiln imports buildah's images with buildah's default gzip layers",
            );
        }
        for (name, ctx) in &req.build_contexts {
            if let NamedContext::OciLayout { .. } = ctx {
                return refuse(
                    &format!("--build-context {name}=oci-layout://"),
                    "buildah 1.28 takes directories and docker-image:// only",
                );
            }
        }
        for output in &req.outputs {
            if let Output::Local { .. } | Output::Tar { .. } = output {
                return refuse(
                    "--output type=local|tar",
                    "the buildah backend writes images (type=image, registry, oci, docker)",
                );
            }
        }
        Ok(())
    }

    fn run_build(
        &self,
        req: &BuildRequest,
        events: &EventSink,
        started: Instant,
    ) -> Result<BuiltImage, BuildError> {
        Self::check_request(req)?;
        if req.tags.is_empty() && req.outputs.contains(&Output::Image { push: true }) {
            return Err(BuildError::Request(
                "pushing needs a name: add -t REGISTRY/REPOSITORY:TAG".into(),
            ));
        }
        let ast = kiln_frontend::parse(&req.dockerfile.name, &req.dockerfile.bytes)?;
        let mut tracker = progress::Tracker::new(&ast, events);
        let scratch = tempfile::Builder::new()
            .prefix("buildah-")
            .tempdir_in(self.store.tmp_dir())
            .map_err(|e| BuildError::Output {
                path: self.store.tmp_dir().to_path_buf(),
                source: e,
            })?;
        let scratch = scratch.path();
        let mut cmd = self.command()?;
        self.bud_args(req, scratch, &mut cmd)?;
        tracker.start();
        self.run_bud(cmd, req, &mut tracker)?;
        tracker.finish();
        let iid = std::fs::read_to_string(scratch.join("iid")).map_err(|e| BuildError::Output {
            path: scratch.join("iid"),
            source: e,
        })?;
        let id = iid.trim().to_string();
        // buildah's storage holds layers uncompressed: the push to an OCI
        // layout compresses them and writes the manifest kiln imports.
        let layout = scratch.join("layout");
        let mut push = self.command()?;
        push.args(["push", "--quiet"]);
        if req.docker_media_types {
            push.args(["--format", "v2s2"]);
        }
        push.arg(&id).arg(format!("oci:{}", layout.display()));
        self.run(&mut push)?;
        let loaded = self.store.load(&layout)?;
        let manifest = loaded
            .into_iter()
            .next()
            .map(|i| i.descriptor)
            .ok_or_else(|| BuildError::Request(format!("buildah wrote no image for {id}")))?;
        let mut tags = Vec::new();
        for output in &req.outputs {
            let archive = [ArchiveImage {
                descriptor: manifest.clone(),
                tags: req.tags.clone(),
            }];
            match output {
                Output::Image { push } => {
                    for tag in &req.tags {
                        self.store.tag(tag, &manifest)?;
                        tags.push(tag.clone());
                        // From kiln's store, so the registry gets the very
                        // manifest whose digest the build reports: buildah
                        // would compress its uncompressed layers again, or
                        // reuse the base's original blobs, and push another.
                        if *push {
                            let name = tag.to_string();
                            store_images::push(
                                &self.store,
                                &self.registry,
                                &name,
                                Some(tag),
                                events,
                            )?;
                        }
                    }
                }
                Output::Oci { dest } => self.store.export_oci(&archive, dest)?,
                Output::Docker { dest } => self.store.save_docker(&archive, dest)?,
                Output::Local { .. } | Output::Tar { .. } => {
                    unreachable!("refused by check_request")
                }
            }
        }
        let Parsed::Manifest(_, image) = parse_manifest(
            &self.store.read_blob(&manifest.digest)?,
            Some(&manifest.media_type),
        )
        .map_err(|e| BuildError::Request(format!("the manifest buildah wrote: {e}")))?
        else {
            return Err(BuildError::Request(
                "buildah wrote an index, not an image manifest".into(),
            ));
        };
        Ok(BuiltImage {
            layers: image.layers.len(),
            size: image.config.size + image.layers.iter().map(|l| l.size).sum::<u64>(),
            config: image.config.clone(),
            manifest,
            tags,
            build_time: started.elapsed(),
            is_index: false,
        })
    }

    /// `buildah bud` and its flags for `req`; files it needs go in
    /// `scratch`.
    fn bud_args(
        &self,
        req: &BuildRequest,
        scratch: &Path,
        cmd: &mut Command,
    ) -> Result<(), BuildError> {
        let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, BuildError> {
            let path = scratch.join(name);
            std::fs::write(&path, bytes).map_err(|e| BuildError::Output {
                path: path.clone(),
                source: e,
            })?;
            Ok(path)
        };
        // The file itself when it holds what kiln read, so buildah finds
        // `<Dockerfile>.dockerignore` beside it; else (standard input, a
        // translated ZImagefile) the bytes kiln has.
        let dockerfile = match &req.dockerfile.path {
            Some(p) if std::fs::read(p).is_ok_and(|b| b == req.dockerfile.bytes) => p.clone(),
            _ => write("Dockerfile", &req.dockerfile.bytes)?,
        };
        let runtime = req.runtime.as_deref().unwrap_or("runc");
        // No `--layers`: with it, buildah 1.28 commits a WORKDIR step
        // without the directory it made (the corpus's `workdir` case), so
        // buildah keeps no step cache between builds.
        cmd.args(["bud", "--runtime", runtime])
            .args([
                "--format",
                if req.docker_media_types {
                    "docker"
                } else {
                    "oci"
                },
            ])
            .args(self.tls_args())
            .arg("--iidfile")
            .arg(scratch.join("iid"))
            .arg("-f")
            .arg(dockerfile);
        for (k, v) in &req.build_args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if let Some(t) = &req.target {
            cmd.args(["--target", t]);
        }
        if let Some(p) = &req.platform {
            cmd.arg("--platform").arg(p.to_string());
        }
        for (k, v) in &req.labels {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        if req.no_cache {
            cmd.arg("--no-cache");
        }
        // buildah's own names for the same policies (its `true` is "newer
        // or missing").
        cmd.arg(match req.pull {
            PullPolicy::Missing => "--pull=false",
            PullPolicy::Always => "--pull=always",
            PullPolicy::Newer => "--pull=true",
            PullPolicy::Never => "--pull=never",
        });
        for tag in &req.tags {
            cmd.arg("-t").arg(tag.to_string());
        }
        for (name, ctx) in &req.build_contexts {
            let value = match ctx {
                NamedContext::Dir(dir) => dir.display().to_string(),
                NamedContext::Image(r) => format!("docker-image://{r}"),
                NamedContext::OciLayout { .. } => unreachable!("refused by check_request"),
            };
            cmd.arg("--build-context").arg(format!("{name}={value}"));
        }
        for (id, source) in &req.secrets {
            let src = match source {
                SecretSource::File(p) => p.clone(),
                // In this build's scratch directory, which only this
                // process uses and which goes when the build ends.
                SecretSource::Value(bytes) => {
                    write(&format!("secret-{}", secrets_name(id)), bytes)?
                }
            };
            cmd.arg("--secret")
                .arg(format!("id={id},src={}", src.display()));
        }
        for (id, socket) in &req.ssh {
            cmd.arg("--ssh").arg(format!("{id}={}", socket.display()));
        }
        if let Some(epoch) = req.source_date_epoch {
            cmd.arg("--timestamp").arg(epoch.to_string());
        }
        let context = match &req.context {
            Some(dir) => dir.clone(),
            None => {
                let empty = scratch.join("no-context");
                std::fs::create_dir(&empty).map_err(|e| BuildError::Output {
                    path: empty.clone(),
                    source: e,
                })?;
                empty
            }
        };
        cmd.arg(context);
        Ok(())
    }

    /// Runs `buildah bud`, feeding both its streams to `tracker`, and
    /// stops it when the request is interrupted.
    fn run_bud(
        &self,
        mut cmd: Command,
        req: &BuildRequest,
        tracker: &mut progress::Tracker,
    ) -> Result<(), BuildError> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| not_found(&e))?;
        let (tx, rx) = mpsc::channel::<(String, bool)>();
        let readers = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        let threads: Vec<_> = readers
            .into_iter()
            .zip([false, true])
            .filter_map(|(r, stderr)| r.map(|r| (r, stderr)))
            .map(|(r, stderr)| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(r).lines() {
                        let Ok(line) = line else { break };
                        if tx.send((line, stderr)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut interrupted = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((line, stderr)) => tracker.line(&line, stderr),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if !interrupted && req.interrupt.load(Ordering::SeqCst) {
                interrupted = true;
                terminate(&mut child);
            }
        }
        for t in threads {
            let _ = t.join();
        }
        let status = child
            .wait()
            .map_err(|e| BuildError::Request(format!("waiting for buildah: {e}")))?;
        if interrupted {
            return Err(BuildError::Interrupted);
        }
        if !status.success() {
            return Err(tracker.failure(&status.to_string()).into());
        }
        Ok(())
    }

    /// `buildah push` of `image` to `dest`; the digest buildah pushed.
    fn push_to(&self, image: &str, dest: &Reference, list: bool) -> Result<Digest, BuildError> {
        let digest_file = tempfile::Builder::new()
            .prefix("buildah-digest-")
            .tempfile_in(self.store.tmp_dir())
            .map_err(|e| BuildError::Output {
                path: self.store.tmp_dir().to_path_buf(),
                source: e,
            })?;
        let mut cmd = self.command()?;
        if list {
            cmd.args(["manifest", "push", "--all"]);
        } else {
            cmd.arg("push");
        }
        cmd.arg("--quiet")
            .args(self.tls_args_for(dest))
            .arg("--digestfile")
            .arg(digest_file.path())
            .arg(Self::image_name(image))
            .arg(format!("docker://{dest}"));
        self.run(&mut cmd)?;
        let text = std::fs::read_to_string(digest_file.path()).map_err(|e| BuildError::Output {
            path: digest_file.path().to_path_buf(),
            source: e,
        })?;
        // buildah 1.28 can exit 0 from a push that failed, writing no
        // digest.
        text.trim().parse().map_err(|_| {
            BuildError::Request(format!(
                "buildah pushed {image} to {dest} without reporting a digest: the push failed"
            ))
        })
    }
}

/// A secret id as a file name: anything but letters, digits, `-` and `_`
/// becomes `_`.
fn secrets_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn not_found(e: &std::io::Error) -> BuildError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BuildError::NotSupported(format!(
            "NotSupported: backend buildah: {PROGRAM} not found in PATH; install it (apt-get install buildah) or build with --backend native"
        ))
    } else {
        BuildError::Request(format!("running {PROGRAM}: {e}"))
    }
}

/// `buildah --version`: the version found, or why buildah cannot run.
pub fn probe() -> Result<String, Unavailable> {
    let out = Command::new(PROGRAM)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Unavailable::new(if e.kind() == std::io::ErrorKind::NotFound {
                format!("{PROGRAM} not found in PATH")
            } else {
                format!("cannot run {PROGRAM}: {e}")
            })
        })?;
    if !out.status.success() {
        return Err(Unavailable::new(format!(
            "`{PROGRAM} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `buildah version 1.28.2 (image-spec 1.1.0-rc2, runtime-spec …)`.
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split(" (").next().unwrap_or(&text).trim();
    Ok(version.to_string())
}

impl BuildBackend for BuildahBackend {
    fn name(&self) -> &'static str {
        "buildah"
    }

    fn is_available(&self) -> Result<String, Unavailable> {
        probe()
    }

    fn build(&self, req: &BuildRequest, events: &EventSink) -> Result<BuiltImage, BuildError> {
        events.finish(self.run_build(req, events, Instant::now()))
    }

    /// Tags in buildah's storage, and in kiln's store when the image is
    /// there too (every image this backend built is).
    fn tag(&self, image: &str, new_name: &str) -> Result<(), BuildError> {
        let new_name = store_images::parse_name(new_name)?;
        let mut cmd = self.command()?;
        cmd.arg("tag")
            .arg(Self::image_name(image))
            .arg(new_name.to_string());
        self.run(&mut cmd)?;
        if let Ok(found) = self.store.resolve(image) {
            self.store.tag(&new_name, &found.descriptor)?;
        }
        Ok(())
    }

    /// buildah uploads the blobs itself, so only the push's start and end
    /// are reported, not its blobs.
    fn push(
        &self,
        image: &str,
        dest: Option<&Reference>,
        events: &EventSink,
    ) -> Result<Pushed, BuildError> {
        let dest = match dest {
            Some(d) => d.clone(),
            None => Reference::parse(image).map_err(|_| {
                BuildError::Request(format!(
                    "{image} has no name to push to; give a destination REGISTRY/REPO:TAG"
                ))
            })?,
        };
        events.send(BuildEvent::PushStarted {
            reference: dest.to_string(),
        });
        let digest = self.push_to(image, &dest, false)?;
        events.send(BuildEvent::PushComplete {
            reference: dest.to_string(),
            digest: digest.to_string(),
        });
        Ok(Pushed {
            reference: dest,
            digest,
        })
    }

    /// `buildah manifest create`, after removing a list of that name: a
    /// list is created afresh, as the trait says.
    fn manifest_create(&self, list: &Reference) -> Result<(), BuildError> {
        let name = list.to_string();
        let mut rm = self.command()?;
        rm.args(["manifest", "rm", &name]);
        // Absent is the usual case; any other failure shows in create.
        let _ = self.run(&mut rm);
        let mut cmd = self.command()?;
        cmd.args(["manifest", "create", &name]);
        self.run(&mut cmd)
    }

    fn manifest_add(&self, list: &Reference, image: &str) -> Result<(), BuildError> {
        let mut cmd = self.command()?;
        let name = Self::image_name(image);
        let tls = Reference::parse(&name).map_or(self.tls_args(), |r| self.tls_args_for(&r));
        cmd.args(["manifest", "add"])
            .args(tls)
            .arg(list.to_string())
            .arg(name);
        self.run(&mut cmd)
    }

    fn manifest_push(&self, list: &Reference, dest: &Reference) -> Result<Pushed, BuildError> {
        let digest = self.push_to(&list.to_string(), dest, true)?;
        Ok(Pushed {
            reference: dest.clone(),
            digest,
        })
    }
}

/// Stops an interrupted buildah.
#[cfg(unix)]
fn terminate(child: &mut std::process::Child) {
    // SIGTERM, not SIGKILL: it lets buildah remove its build containers.
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
}

/// Stops an interrupted buildah: Windows has no SIGTERM to ask it nicely.
#[cfg(windows)]
fn terminate(child: &mut std::process::Child) {
    let _ = child.kill();
}
