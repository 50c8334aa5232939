//! Outputs that leave kiln through another process: a tar on standard
//! output (`-o -`, `dest=-`, as buildx writes it) and a docker-archive
//! streamed into `docker load` or `podman load` (`--load`, or
//! `type=docker` without a dest). The engine writes each to a file in the
//! store's leased temporary directory (so a build that fails leaves nothing
//! half-written on a pipe), and the CLI hands the file on once the build
//! has succeeded.

use anyhow::{bail, Context};
use kiln_backend::Output;
use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where an output's file goes once the build is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sink {
    /// Copied to standard output.
    Stdout,
    /// Streamed into `docker load` or `podman load`.
    Load,
}

/// The outputs a build hands on, each as its index in the request's
/// outputs and where it goes.
pub(super) type Sinks = Vec<(usize, Sink)>;

/// Reads an `--output` spec as buildx does for the cases that end outside
/// kiln: `-` is `type=tar,dest=-`; `dest=-` (and `type=oci` or `type=tar`
/// without a dest) is standard output, refused when it is a terminal; a
/// `type=docker` without a dest is loaded. Anything else is the engine's
/// (`None`).
pub(super) fn parse(spec: &str) -> anyhow::Result<Option<(Output, Sink)>> {
    let spec = if spec == "-" { "type=tar,dest=-" } else { spec };
    let mut kind = None;
    let mut dest = None;
    for field in spec.split(',') {
        match field.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("type", v)) => kind = Some(v.to_ascii_lowercase()),
            Some(("dest", v)) => dest = Some(v),
            _ => {}
        }
    }
    let sink = match (kind.as_deref(), dest) {
        (Some("oci" | "tar" | "docker" | "local"), Some("-")) | (Some("oci" | "tar"), None) => {
            Sink::Stdout
        }
        (Some("docker"), None) => Sink::Load,
        _ => return Ok(None),
    };
    if sink == Sink::Stdout && std::io::stdout().is_terminal() {
        bail!("--output {spec}: refusing to write a tar archive to a terminal; give dest=FILE or redirect the output");
    }
    // A directory on standard output is a tar of it, as buildx writes it.
    let kind = match kind.as_deref() {
        Some("local") => "tar",
        Some(k) => k,
        None => "tar",
    };
    let rest: Vec<&str> = spec
        .split(',')
        .filter(|f| {
            !matches!(
                f.split_once('=').map(|(k, _)| k.trim()),
                Some("type" | "dest")
            )
        })
        .collect();
    let mut engine_spec = format!("type={kind},dest=-");
    for field in rest {
        engine_spec.push(',');
        engine_spec.push_str(field);
    }
    let output = Output::parse(&engine_spec).map_err(anyhow::Error::msg)?;
    Ok(Some((output, sink)))
}

/// The outputs of a build that kiln hands on: each one's file, and
/// standard output or the tool that loads it.
pub(super) struct Deliveries(Vec<(Option<&'static str>, PathBuf)>);

impl Deliveries {
    /// Points each handed-on output (`outputs[index]`) at a file in `tmp`,
    /// and, for a load, finds the tool before anything is built.
    pub(super) fn bind(
        outputs: &mut [Output],
        sinks: &Sinks,
        tmp: &Path,
    ) -> anyhow::Result<Deliveries> {
        if sinks.iter().filter(|(_, s)| *s == Sink::Stdout).count() > 1 {
            bail!("--output: only one output can go to standard output");
        }
        let mut out = Vec::new();
        for (n, (index, sink)) in sinks.iter().enumerate() {
            let tool = match sink {
                Sink::Stdout => None,
                Sink::Load => Some(loader()?),
            };
            // The OCI exporter writes a tar only for a name ending in .tar.
            let file = tmp.join(format!("output-{n}.tar"));
            match &mut outputs[*index] {
                Output::Oci { dest }
                | Output::Docker { dest }
                | Output::Tar { dest }
                | Output::Local { dest } => *dest = file.clone(),
                Output::Image { .. } => unreachable!("parse gives file outputs only"),
            }
            out.push((tool, file));
        }
        Ok(Deliveries(out))
    }

    /// Whether an output takes standard output (then the CLI prints no
    /// result line there).
    pub(super) fn uses_stdout(&self) -> bool {
        self.0.iter().any(|(tool, _)| tool.is_none())
    }

    /// Hands each file on, then removes it.
    pub(super) fn deliver(self) -> anyhow::Result<()> {
        for (tool, file) in self.0 {
            let result = match tool {
                None => File::open(&file)
                    .map(|mut f| crate::output::copy_out(&mut f))
                    .context("reading the output back"),
                Some(tool) => load(tool, &file),
            };
            let _ = std::fs::remove_file(&file);
            result?;
        }
        Ok(())
    }
}

/// The tool `--load` streams into: docker when its daemon answers, else
/// podman (which needs none).
fn loader() -> anyhow::Result<&'static str> {
    let quiet = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if quiet("docker", &["info", "--format", "{{.ServerVersion}}"]) {
        return Ok("docker");
    }
    if quiet("podman", &["--version"]) {
        return Ok("podman");
    }
    bail!(
        "--load: no docker daemon answers (`docker info` fails) and podman is not installed; \
         start docker, install podman, or write the image with -o type=docker,dest=FILE.tar"
    )
}

/// Streams the docker-archive `file` into `docker load` / `podman load`;
/// their report goes to standard error, keeping standard output for the
/// image id (`-q`).
fn load(tool: &str, file: &Path) -> anyhow::Result<()> {
    let input = File::open(file).context("reading the docker-archive back")?;
    let status = Command::new(tool)
        .arg("load")
        .stdin(input)
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("--load: cannot run `{tool} load`"))?;
    if !status.success() {
        bail!("--load: `{tool} load` failed ({status})");
    }
    Ok(())
}
