//! The HCS backend on Linux, against a fake [`ComputeHost`] driven by
//! fixture transport folders: a RUN's command line picks the folder the
//! fake "exports" (files the step created, a tombstone for a file it
//! deleted, a hive delta), and the fake records what it was asked to run
//! and the layers it was asked to import.
//! The Windows base is built in the same store by the native backend from
//! `FROM --platform=windows/amd64 scratch`, so no registry is needed.

mod build_support;

use build_support::{history, read_layer, Env};
use kiln_backend::{BuildBackend, BuildError, EventSink, Unavailable};
use kiln_native::hcs::{ComputeHost, ProcessSpec};
use kiln_native::HcsBackend;
use kiln_oci::windows::sd::{SecurityDescriptor, DIR_SDDL, FILE_SDDL};
use kiln_oci::windows::transport::stream::{BackupStreamWriter, StreamHeader, StreamId};
use kiln_oci::windows::transport::ImportedFolder;
use kiln_store::{Descriptor, Store};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake does for a command line.
enum Script {
    /// Prints `lines`, exits 0; its diff is the folder `diff`.
    Diff { diff: PathBuf, lines: Vec<String> },
    /// Prints `lines`, exits with `code`.
    Fail { code: u32, lines: Vec<String> },
    /// Sets `started`, then runs until cancelled.
    Block { started: Arc<AtomicBool> },
}

/// A process the fake was asked to run, and on how many parent layers.
#[derive(Clone, Debug)]
struct Ran {
    process: ProcessSpec,
    parents: usize,
}

#[derive(Default)]
struct Fake {
    scripts: Mutex<HashMap<String, Script>>,
    ran: Mutex<Vec<Ran>>,
    /// Each import: how many entries its folder's `Files` had, and how
    /// many parents it was given.
    imported: Mutex<Vec<(usize, usize)>>,
    /// The entry names of each base layer imported.
    base: Mutex<Vec<Vec<String>>>,
    removed: Mutex<usize>,
    /// Answer base-layer imports as the Windows host does today.
    refuse_base: AtomicBool,
}

impl Fake {
    fn script(&self, command_line: &str, script: Script) {
        self.scripts
            .lock()
            .unwrap()
            .insert(command_line.to_string(), script);
    }
}

impl ComputeHost for Fake {
    fn availability(&self) -> Result<String, Unavailable> {
        Ok("a fake host".into())
    }

    fn import_base_layer(&self, tar: &mut dyn Read, layer: &Path) -> Result<(), String> {
        if self.refuse_base.load(Ordering::SeqCst) {
            return Err("NotSupported: this host imports no base layers".into());
        }
        let mut names = Vec::new();
        for entry in tar::Archive::new(tar)
            .entries()
            .map_err(|e| e.to_string())?
        {
            let entry = entry.map_err(|e| e.to_string())?;
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        self.base.lock().unwrap().push(names);
        fs::create_dir(layer).map_err(|e| e.to_string())
    }

    fn import_layer(
        &self,
        folder: &Path,
        _: &ImportedFolder,
        layer: &Path,
        parents: &[PathBuf],
    ) -> Result<(), String> {
        assert!(
            !parents.is_empty() && parents.iter().all(|p| p.is_dir()),
            "{parents:?}"
        );
        let files = fs::read_dir(folder.join("Files"))
            .map_err(|e| e.to_string())?
            .count();
        self.imported.lock().unwrap().push((files, parents.len()));
        fs::create_dir(layer).map_err(|e| e.to_string())
    }

    fn create_scratch(&self, scratch: &Path, parents: &[PathBuf]) -> Result<(), String> {
        assert!(parents.iter().all(|p| p.is_dir()), "{parents:?}");
        fs::create_dir(scratch).map_err(|e| e.to_string())
    }

    fn run(
        &self,
        scratch: &Path,
        parents: &[PathBuf],
        process: &ProcessSpec,
        cancel: &AtomicBool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<u32, String> {
        self.ran.lock().unwrap().push(Ran {
            process: process.clone(),
            parents: parents.len(),
        });
        let scripts = self.scripts.lock().unwrap();
        match scripts.get(&process.command_line) {
            Some(Script::Diff { diff, lines }) => {
                lines.iter().for_each(|l| on_line(l));
                // What export_diff hands back for this scratch.
                fs::write(scratch.join("diff-from"), diff.to_str().unwrap())
                    .map_err(|e| e.to_string())?;
                Ok(0)
            }
            Some(Script::Fail { code, lines }) => {
                lines.iter().for_each(|l| on_line(l));
                Ok(*code)
            }
            Some(Script::Block { started }) => {
                started.store(true, Ordering::SeqCst);
                while !cancel.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                // A terminated Windows process ends with 1.
                Ok(1)
            }
            None => Err(format!(
                "the fake has no script for {:?}",
                process.command_line
            )),
        }
    }

    fn export_diff(&self, scratch: &Path, _: &[PathBuf], dest: &Path) -> Result<(), String> {
        let from = fs::read_to_string(scratch.join("diff-from")).map_err(|e| e.to_string())?;
        copy_tree(Path::new(&from), dest);
        Ok(())
    }

    fn remove_scratch(&self, scratch: &Path) -> Result<(), String> {
        *self.removed.lock().unwrap() += 1;
        fs::remove_dir_all(scratch).map_err(|e| e.to_string())
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A transport file: Win32 attributes, then the streams.
fn transport(attr: u32, streams: &[(StreamId, &[u8])]) -> Vec<u8> {
    let mut w = BackupStreamWriter::new(attr.to_le_bytes().to_vec());
    for (id, content) in streams {
        w.write_header(&StreamHeader::new(*id, content.len() as u64))
            .unwrap();
        std::io::Write::write_all(&mut w, content).unwrap();
    }
    w.finish().unwrap()
}

fn sd(sddl: &str) -> Vec<u8> {
    SecurityDescriptor::parse_sddl(sddl).unwrap().to_bytes()
}

/// The folder HCS would export for `echo hi> C:\app\out.txt & del
/// C:\base.txt`: the new directory and file, the base's file as a
/// tombstone, and a hive delta.
fn run_fixture(root: &Path) {
    fs::create_dir_all(root.join("Files/app")).unwrap();
    fs::create_dir_all(root.join("Hives")).unwrap();
    fs::write(
        root.join("Files/app.$wcidirs$"),
        transport(0x10, &[(StreamId::Security, &sd(DIR_SDDL))]),
    )
    .unwrap();
    fs::write(
        root.join("Files/app/out.txt"),
        transport(
            0x20,
            &[
                (StreamId::Security, &sd(FILE_SDDL)),
                (StreamId::Data, b"hi\r\n"),
            ],
        ),
    )
    .unwrap();
    fs::write(root.join("Hives/Software_Delta"), b"regf software").unwrap();
    fs::write(root.join("Hives/System_Delta"), b"regf system").unwrap();
    fs::write(
        root.join("tombstones.txt"),
        "\u{feff}Version 1.0\n\\base.txt\n",
    )
    .unwrap();
}

/// An [`Env`] holding `local/winbase:1`, a Windows image with ENV, USER,
/// WORKDIR and a file, and an HCS backend on the same store.
struct Hcs {
    env: Env,
    fake: Arc<Fake>,
    backend: HcsBackend,
}

impl Hcs {
    fn new() -> Hcs {
        let env = Env::new();
        env.file("base.txt", "base").file("app.txt", "app");
        let mut base = env.request(
            "FROM --platform=windows/amd64 scratch\nENV BASEVAR=from-base Path=C:\\\\Windows\nCOPY base.txt C:/base.txt\n",
        );
        base.tags.push("local/winbase:1".parse().unwrap());
        env.run(&base).unwrap_or_else(|e| panic!("{e}"));
        let fake = Arc::new(Fake::default());
        let store = Store::open(env.dir.path().join("store")).unwrap();
        let registry = kiln_registry::ClientOptions::new(
            kiln_registry::AuthFiles::docker_and_containers(env.dir.path(), None, None, None),
        );
        let backend = HcsBackend::new(store, registry, fake.clone());
        Hcs { env, fake, backend }
    }

    fn build(&self, dockerfile: &str) -> Result<kiln_backend::BuiltImage, BuildError> {
        let mut req = self.env.request(dockerfile);
        req.tags.push("local/out:1".parse().unwrap());
        self.backend.build(&req, &EventSink::discard())
    }
}

const DOCKERFILE: &str = "# escape=`
FROM --platform=windows/amd64 local/winbase:1
ENV STEPVAR=1
USER ContainerUser
WORKDIR C:\\app
RUN echo hi> C:\\app\\out.txt & del C:\\base.txt
COPY app.txt .
";

const RUN_LINE: &str = r"cmd /S /C echo hi> C:\app\out.txt & del C:\base.txt";

#[test]
fn run_becomes_the_layer_hcs_exported() {
    let hcs = Hcs::new();
    let fixture = tempfile::tempdir().unwrap();
    run_fixture(fixture.path());
    hcs.fake.script(
        RUN_LINE,
        Script::Diff {
            diff: fixture.path().to_path_buf(),
            lines: vec!["ran".into()],
        },
    );
    let built = hcs.build(DOCKERFILE).unwrap_or_else(|e| panic!("{e}"));
    let env = &hcs.env;
    let manifest = env.manifest(&built);
    let layers = manifest["layers"].as_array().unwrap();
    // The base's COPY, WORKDIR, RUN, COPY.
    assert_eq!(layers.len(), 4, "{manifest:#}");

    let run: Descriptor = serde_json::from_value(layers[2].clone()).unwrap();
    let entries = read_layer(&env.store().blob_path(&run.digest));
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e.line.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Files",
            "Files/.wh.base.txt",
            "Files/app",
            "Files/app/out.txt",
            "Hives",
            "Hives/Software_Delta",
            "Hives/System_Delta",
        ]
    );
    assert_eq!(entries[3].data, "hi\r\n");
    assert_eq!(entries[6].data, "regf system");
    // What the importer would make of it.
    let blob = fs::read(env.store().blob_path(&run.digest)).unwrap();
    kiln_oci::windows::check_layer(&blob[..]).unwrap_or_else(|e| panic!("{e}"));

    let config = env.config(&built);
    assert_eq!(config["os"], "windows");
    let history = history(&config);
    assert_eq!(
        history[history.len() - 2],
        format!("RUN {RUN_LINE} # buildkit"),
        "{history:#?}"
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);

    let ran = hcs.fake.ran.lock().unwrap().clone();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].parents, 2, "the base's layer and WORKDIR's");
    let p = &ran[0].process;
    assert_eq!(p.command_line, RUN_LINE);
    assert_eq!(p.working_dir, r"C:\app");
    assert_eq!(p.user, "ContainerUser");
    assert!(p.env.contains(&"BASEVAR=from-base".to_string()), "{p:?}");
    assert!(p.env.contains(&r"Path=C:\Windows".to_string()), "{p:?}");
    assert!(p.env.contains(&"STEPVAR=1".to_string()), "{p:?}");
    assert!(!p.env.iter().any(|v| v.starts_with("PATH=")), "{p:?}");
    // Each parent imported once: the base from its tar, then WORKDIR's
    // layer (`app` and its `app.$wcidirs$`) from a folder, on the base.
    assert_eq!(
        *hcs.fake.base.lock().unwrap(),
        [["Files", "Files/base.txt", "Hives"]]
    );
    assert_eq!(*hcs.fake.imported.lock().unwrap(), [(2, 1)]);
    assert_eq!(*hcs.fake.removed.lock().unwrap(), 1);
    build_support::assert_fsck_clean(env.store());
}

#[test]
fn a_failing_process_names_the_dockerfile_line_and_its_output() {
    let hcs = Hcs::new();
    hcs.fake.script(
        "cmd /S /C exit 3",
        Script::Fail {
            code: 3,
            lines: vec!["about to fail".into()],
        },
    );
    // No --platform: the stage is Windows because its base is.
    let err = hcs
        .build("FROM local/winbase:1\n\nRUN exit 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("Dockerfile:3"), "{err}");
    assert!(
        err.contains("process \"cmd /S /C exit 3\" did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(err.contains("about to fail"), "{err}");
    // No image, and the scratch is gone.
    assert!(!hcs.env.images().iter().any(|i| i.contains("local/out")));
    assert_eq!(*hcs.fake.removed.lock().unwrap(), 1);
}

#[test]
fn an_interrupt_stops_a_running_process() {
    let hcs = Hcs::new();
    let started = Arc::new(AtomicBool::new(false));
    hcs.fake.script(
        "cmd /S /C ping -t localhost",
        Script::Block {
            started: started.clone(),
        },
    );
    let mut req = hcs
        .env
        .request("FROM --platform=windows/amd64 local/winbase:1\nRUN ping -t localhost\n");
    let interrupt = req.interrupt.clone();
    req.tags.push("local/out:1".parse().unwrap());
    let result = std::thread::scope(|s| {
        let build = s.spawn(|| hcs.backend.build(&req, &EventSink::discard()));
        while !started.load(Ordering::SeqCst) {
            assert!(
                !build.is_finished(),
                "the build ended before its RUN started"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        interrupt.store(true, Ordering::SeqCst);
        build.join().unwrap()
    });
    assert!(matches!(result, Err(BuildError::Interrupted)), "{result:?}");
    assert_eq!(*hcs.fake.removed.lock().unwrap(), 1);
}

#[test]
fn run_flags_hcs_cannot_honour_are_refused() {
    let hcs = Hcs::new();
    for (flag, what) in [
        ("--network=none", "RUN --network=none"),
        ("--mount=type=cache,target=C:/cache", "RUN --mount"),
    ] {
        let err = hcs
            .build(&format!(
                "FROM --platform=windows/amd64 local/winbase:1\nRUN {flag} dir\n"
            ))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "{what} in a Windows image is not supported by the HCS backend"
            )),
            "{err}"
        );
    }
    assert!(hcs.fake.ran.lock().unwrap().is_empty());
}

#[test]
fn linux_stages_keep_the_linux_executor_and_the_backend_names_itself() {
    let hcs = Hcs::new();
    assert_eq!(hcs.backend.name(), "hcs");
    assert_eq!(hcs.backend.is_available().unwrap(), "a fake host");
    // A Linux stage without RUN builds as with the native backend.
    hcs.env.file("a", "a");
    hcs.build("FROM scratch\nCOPY a /a\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(hcs.fake.ran.lock().unwrap().is_empty());
    // Without a host, the HCS backend's availability names where it runs.
    let why = kiln_native::hcs::availability().unwrap_err().to_string();
    assert!(why.contains("HCS needs a Windows host"), "{why}");
}

#[test]
fn the_native_backend_refuses_run_in_a_windows_base_planned_as_linux() {
    let hcs = Hcs::new();
    // No --platform, so the stage is planned for linux; its base decides.
    let err = hcs
        .env
        .run(&hcs.env.request("FROM local/winbase:1\nRUN dir\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("RUN in a windows image needs a windows host"),
        "{err}"
    );
    assert!(err.starts_with("Dockerfile:2"), "{err}");
}

#[test]
fn output_streams_as_events_and_a_second_build_takes_run_from_the_cache() {
    let hcs = Hcs::new();
    let fixture = tempfile::tempdir().unwrap();
    run_fixture(fixture.path());
    hcs.fake.script(
        RUN_LINE,
        Script::Diff {
            diff: fixture.path().to_path_buf(),
            lines: vec!["line one".into(), "line two".into()],
        },
    );
    let req = hcs.env.request(DOCKERFILE);
    let (sink, rx) = EventSink::channel();
    let first = hcs
        .backend
        .build(&req, &sink)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(sink);
    let output: Vec<String> = rx
        .iter()
        .filter_map(|e| match e {
            kiln_backend::BuildEvent::Output { line, .. } => Some(line),
            _ => None,
        })
        .collect();
    assert_eq!(output, ["line one", "line two"]);
    let second = hcs
        .backend
        .build(&req, &EventSink::discard())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hcs.fake.ran.lock().unwrap().len(), 1, "RUN ran again");
    assert_eq!(first.image_id(), second.image_id());
}

#[test]
fn exec_form_is_escaped_and_source_date_epoch_clamps_the_run_layer() {
    let hcs = Hcs::new();
    let fixture = tempfile::tempdir().unwrap();
    run_fixture(fixture.path());
    let line = r#"cmd /C "echo hi> C:\app\out.txt""#;
    hcs.fake.script(
        line,
        Script::Diff {
            diff: fixture.path().to_path_buf(),
            lines: Vec::new(),
        },
    );
    let mut req = hcs.env.request(
        "FROM --platform=windows/amd64 local/winbase:1\nRUN [\"cmd\", \"/C\", \"echo hi> C:\\\\app\\\\out.txt\"]\n",
    );
    req.source_date_epoch = Some(100);
    let built = hcs
        .backend
        .build(&req, &EventSink::discard())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hcs.fake.ran.lock().unwrap()[0].process.command_line, line);
    let layers = hcs.env.layers(&built);
    let run = layers.last().unwrap();
    assert!(run.iter().any(|e| e.line.starts_with("Files/app/out.txt ")));
    for e in run {
        let mtime: i64 = e.line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(mtime <= 100, "{}", e.line);
    }
    let history = history(&hcs.env.config(&built));
    assert_eq!(
        history.last().unwrap(),
        r"RUN cmd /C echo hi> C:\app\out.txt # buildkit"
    );
}

#[test]
fn a_layer_the_host_cannot_import_fails_the_step_naming_it() {
    let hcs = Hcs::new();
    hcs.fake.refuse_base.store(true, Ordering::SeqCst);
    let err = hcs
        .build("FROM --platform=windows/amd64 local/winbase:1\nRUN dir\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("Dockerfile:2"), "{err}");
    assert!(
        err.contains("importing layer sha256:")
            && err.contains("(base layer): NotSupported: this host imports no base layers"),
        "{err}"
    );
    assert!(hcs.fake.ran.lock().unwrap().is_empty());
}
