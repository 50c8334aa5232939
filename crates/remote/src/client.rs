//! The client: a [`Connection`] speaks the protocol, and the
//! [`RemoteBackend`] builds through it and brings the image home.

use crate::context::{self, LocalContext};
use crate::net::{client_config, server_name, Endpoint, TlsFiles};
use crate::proto::{
    self, BuildSpec, ContextPathsResponse, ErrorBody, ErrorKind, Frame, Info, MissingRequest,
    MissingResponse, WireImage,
};
use crate::server::compression_text;
use crate::Error;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kiln_backend::events::{BuildEvent, EventSink};
use kiln_backend::BuildError;
use kiln_backend::Output;
use kiln_backend::{
    BuildBackend, BuildRequest, BuiltImage, NamedContext, Pushed, SecretSource, Unavailable,
};
use kiln_oci::reference::Reference;
use kiln_store::{ArchiveImage, Store};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// How to reach a daemon: its address and, for TCP, the TLS settings.
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// TCP without a client certificate: the daemon will refuse, and
    /// TLS 1.3 may report that only as a closed connection.
    anonymous: bool,
}

impl Client {
    /// A client of the daemon at `endpoint`. TCP needs `tls` (the CA, and
    /// the client's certificate and key); a unix socket takes none.
    pub fn new(endpoint: Endpoint, tls_files: Option<&TlsFiles>) -> Result<Client, Error> {
        let tls = match (&endpoint, tls_files) {
            (Endpoint::Tcp { .. }, None) => {
                return Err(Error::Config(format!(
                    "{endpoint} needs TLS: give the CA, certificate and key \
                     (--remote-ca, --remote-cert, --remote-key or KILN_REMOTE_CA, \
                     KILN_REMOTE_CERT, KILN_REMOTE_KEY)"
                )))
            }
            (Endpoint::Tcp { .. }, Some(files)) => Some(client_config(files)?),
            (Endpoint::Unix(_), _) => None,
        };
        let anonymous = matches!(
            (&endpoint, tls_files),
            (Endpoint::Tcp { .. }, Some(TlsFiles { identity: None, .. }))
        );
        Ok(Client {
            endpoint,
            tls,
            anonymous,
        })
    }

    /// The daemon's address.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn connect_error(&self, message: impl ToString) -> Error {
        Error::Connect {
            endpoint: self.endpoint.to_string(),
            message: message.to_string(),
        }
    }

    /// Opens an HTTP/2 connection; requests on it share it.
    pub async fn connect(&self) -> Result<Connection, Error> {
        match &self.endpoint {
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                self.handshake(stream, "http://kiln".into()).await
            }
            #[cfg(not(unix))]
            Endpoint::Unix(_) => Err(self.connect_error(
                "unix sockets are not supported on this OS: reach the daemon at tcp://HOST:PORT with mutual TLS",
            )),
            Endpoint::Tcp { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| self.connect_error(e))?;
                let config = self
                    .tls
                    .clone()
                    .ok_or_else(|| self.connect_error("no TLS"))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(server_name(host)?, tcp)
                    .await
                    .map_err(|e| self.connect_error(format!("TLS handshake: {e}")))?;
                let authority = match host.contains(':') {
                    true => format!("https://[{host}]:{port}"),
                    false => format!("https://{host}:{port}"),
                };
                self.handshake(tls, authority).await
            }
        }
    }

    async fn handshake<S>(&self, io: S, base: String) -> Result<Connection, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .adaptive_window(true)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.connect_error(format!("HTTP/2: {e}")))?;
        // Why a connection ended (a TLS alert: the daemon refused this
        // client's certificate) reaches only the connection's task; a
        // request sees "connection closed". Kept here for its error.
        let ended = Arc::new(std::sync::Mutex::new(None));
        let why = ended.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                *why.lock().unwrap_or_else(|p| p.into_inner()) = Some(error_chain(&e));
            }
        });
        Ok(Connection {
            send,
            base,
            endpoint: self.endpoint.to_string(),
            ended,
            anonymous: self.anonymous,
        })
    }

    /// Whether the daemon answers and can build: what it runs, or why not.
    /// Blocks; runs its own small runtime.
    pub fn probe(&self) -> Result<String, Unavailable> {
        let runtime = runtime().map_err(|e| Unavailable::new(e.to_string()))?;
        let info = runtime
            .block_on(async { self.connect().await?.info().await })
            .map_err(|e| Unavailable::new(e.to_string()))?;
        let what = format!(
            "kiln {} daemon at {}, building with {}: {}",
            info.version, self.endpoint, info.backend, info.detail
        );
        if info.available {
            Ok(what)
        } else {
            Err(Unavailable::new(format!("{what} (cannot run there)")))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the client's runtime: {e}")))
}

/// One HTTP/2 connection to a daemon.
pub struct Connection {
    send: SendRequest<Body>,
    base: String,
    endpoint: String,
    ended: Arc<std::sync::Mutex<Option<String>>>,
    anonymous: bool,
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl Connection {
    fn lost(&self, e: impl std::fmt::Display) -> Error {
        let hint = match self.anonymous {
            true => {
                " (this client sent no certificate, and the daemon requires one: \
                 give --remote-cert and --remote-key, or KILN_REMOTE_CERT and KILN_REMOTE_KEY)"
            }
            false => "",
        };
        Error::Connect {
            endpoint: self.endpoint.clone(),
            message: format!("{e}{hint}"),
        }
    }

    /// A request failed: the connection's own error says why, when the
    /// connection task has it (given a moment to record it).
    async fn failed(&self, e: impl std::fmt::Display) -> Error {
        for _ in 0..20 {
            if let Some(why) = self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return self.lost(format!("{e}: {why}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.lost(e)
    }

    /// Sends a request; an error status becomes [`Error::Remote`] with the
    /// daemon's [`ErrorBody`].
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Response<Incoming>, Error> {
        if let Err(e) = self.send.ready().await {
            return Err(self.failed(e).await);
        }
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(body)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let resp = match self.send.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.failed(error_chain(&e)).await),
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.lost(e))?
            .to_bytes();
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Error::Remote(body),
            Err(_) => Error::Protocol(format!(
                "status {status} with a body that is not an error: {}",
                String::from_utf8_lossy(&bytes)
            )),
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, Error> {
        let resp = self.request(method, path, full(body)).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.lost(e))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// `GET /v1/info`.
    pub async fn info(&mut self) -> Result<Info, Error> {
        self.json(Method::GET, "/v1/info", Vec::new()).await
    }

    /// `POST /v1/context-paths`: what of its context the build `spec`
    /// reads (`None`: all of it).
    pub async fn context_paths(&mut self, spec: &BuildSpec) -> Result<Option<Vec<String>>, Error> {
        let body = serde_json::to_vec(spec).unwrap_or_default();
        let answer: ContextPathsResponse =
            self.json(Method::POST, "/v1/context-paths", body).await?;
        Ok(answer.paths)
    }

    /// `POST /v1/blobs/missing`: the digests the daemon lacks.
    pub async fn missing(&mut self, digests: Vec<String>) -> Result<Vec<String>, Error> {
        let body = serde_json::to_vec(&MissingRequest { digests }).unwrap_or_default();
        let answer: MissingResponse = self.json(Method::POST, "/v1/blobs/missing", body).await?;
        Ok(answer.missing)
    }

    /// `PUT /v1/blobs/{digest}` with the file at `path`, streamed from
    /// disk in chunks.
    pub async fn upload(&mut self, digest: &str, path: &Path) -> Result<u64, Error> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(Error::io("reading", path))?;
        let stream = futures_util::stream::unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 1 << 16];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(BodyFrame::data(Bytes::from(buf))), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        let resp = self
            .request(
                Method::PUT,
                &format!("/v1/blobs/{digest}"),
                BodyExt::boxed_unsync(StreamBody::new(stream)),
            )
            .await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.lost(e))?
            .to_bytes();
        let stored: proto::BlobStored =
            serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(stored.size)
    }

    /// `POST /v1/builds`: starts a build; its frames follow on the stream.
    pub async fn start_build(&mut self, spec: &BuildSpec) -> Result<BuildStream, Error> {
        let body = serde_json::to_vec(spec).map_err(|e| Error::Protocol(e.to_string()))?;
        let resp = self.request(Method::POST, "/v1/builds", full(body)).await?;
        Ok(BuildStream {
            body: resp.into_body(),
            buf: Vec::new(),
            endpoint: self.endpoint.clone(),
        })
    }

    /// `GET /v1/results/{id}`: the built image as an OCI archive, written
    /// to `dest`; returns its size.
    pub async fn fetch_result(&mut self, id: &str, dest: &Path) -> Result<u64, Error> {
        let resp = self
            .request(Method::GET, &format!("/v1/results/{id}"), full(Vec::new()))
            .await?;
        let mut body = resp.into_body();
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(Error::io("creating", dest))?;
        let mut size = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.lost(e))?;
            if let Ok(data) = frame.into_data() {
                size += data.len() as u64;
                file.write_all(&data)
                    .await
                    .map_err(Error::io("writing", dest))?;
            }
        }
        file.flush().await.map_err(Error::io("writing", dest))?;
        Ok(size)
    }
}

/// hyper's errors hide their cause (a TLS alert) in the source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A build's frames as they arrive.
pub struct BuildStream {
    body: Incoming,
    buf: Vec<u8>,
    endpoint: String,
}

impl BuildStream {
    /// The next frame; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                let frame = serde_json::from_slice(&line[..line.len() - 1])
                    .map_err(|e| Error::Protocol(format!("a build frame: {e}")))?;
                return Ok(Some(frame));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::Connect {
                        endpoint: self.endpoint.clone(),
                        message: format!("the build's event stream broke off: {e}"),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Builds on a kiln daemon and copies the image into the local store.
pub struct RemoteBackend {
    client: Client,
    store: Store,
}

impl RemoteBackend {
    /// A backend building on the daemon `client` reaches, bringing images
    /// into `store`.
    pub fn new(client: Client, store: Store) -> RemoteBackend {
        RemoteBackend { client, store }
    }

    fn unsupported(&self, what: &str) -> BuildError {
        BuildError::NotSupported(format!(
            "NotSupported: {what} with --backend remote: the daemon at {} builds; \
             the image is in this host's store, so run it with --backend native",
            self.client.endpoint
        ))
    }
}

fn not_supported(flag: &str, why: &str) -> BuildError {
    BuildError::NotSupported(format!("NotSupported: {flag} with --backend remote: {why}"))
}

/// The wire request for `req`, refusing what the remote path cannot carry.
pub fn spec_for(req: &BuildRequest) -> Result<BuildSpec, BuildError> {
    if !req.ssh.is_empty() {
        return Err(not_supported(
            "--ssh",
            "the daemon cannot reach this host's SSH agent (kiln does not forward it)",
        ));
    }
    if !req.cache_from.is_empty() || !req.cache_to.is_empty() {
        return Err(not_supported(
            "--cache-from/--cache-to",
            "shared caches are not passed to the daemon, which keeps its own build cache",
        ));
    }
    let run = &req.run;
    if run.network != kiln_backend::RunDefaults::default().network
        || !run.add_hosts.is_empty()
        || run.shm_size.is_some()
        || !run.ulimits.is_empty()
    {
        return Err(not_supported(
            "--network/--add-host/--shm-size/--ulimit",
            "RUN's build-wide settings are not carried to the daemon",
        ));
    }
    let mut image_contexts = std::collections::BTreeMap::new();
    for (name, ctx) in &req.build_contexts {
        match ctx {
            NamedContext::Image(image) => {
                image_contexts.insert(name.clone(), image.clone());
            }
            NamedContext::Dir(_) | NamedContext::OciLayout { .. } => {
                return Err(not_supported(
                    &format!("--build-context {name}=<local path>"),
                    "only the main context is sent; use docker-image://REF, which the daemon pulls",
                ))
            }
        }
    }
    let mut push = false;
    for output in &req.outputs {
        match output {
            Output::Image { push: p } => push |= *p,
            Output::Oci { .. } | Output::Docker { .. } => {}
            Output::Local { .. } | Output::Tar { .. } => {
                return Err(not_supported(
                    "--output type=local|tar",
                    "the daemon sends images back, not file systems; \
                     use type=oci or type=docker, or --backend native",
                ))
            }
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secrets = std::collections::BTreeMap::new();
    for (id, source) in &req.secrets {
        // Read here: the daemon cannot see this host's files. The bytes
        // travel inside the (TLS or unix socket) connection, as BuildKit's
        // session sends them.
        let bytes = match source {
            SecretSource::Value(v) => v.clone(),
            SecretSource::File(path) => std::fs::read(path).map_err(|e| {
                BuildError::Request(format!("secret {id}: reading {}: {e}", path.display()))
            })?,
        };
        secrets.insert(id.clone(), b64.encode(bytes));
    }
    Ok(BuildSpec {
        dockerfile_name: req.dockerfile.name.clone(),
        dockerfile: b64.encode(&req.dockerfile.bytes),
        context: None,
        build_args: req.build_args.clone(),
        target: req.target.clone(),
        platform: req.platform.as_ref().map(ToString::to_string),
        platforms: req.platforms.iter().map(ToString::to_string).collect(),
        tags: req.tags.iter().map(ToString::to_string).collect(),
        labels: req.labels.clone(),
        no_cache: req.no_cache,
        no_cache_filter: req.no_cache_filter.clone(),
        pull: Some(pull_text(req.pull).to_string()),
        squash: req.squash,
        image_contexts,
        push,
        export: req
            .outputs
            .iter()
            .any(|o| !matches!(o, Output::Image { push: true })),
        compression: Some(compression_text(req.compression)),
        docker_media_types: req.docker_media_types,
        source_date_epoch: req.source_date_epoch,
        secrets,
        runtime: req.runtime.clone(),
        allow_network_host: req.allow_network_host,
        annotations: proto::Annotations {
            manifest: req.annotations.manifest.clone(),
            index: req.annotations.index.clone(),
            manifest_descriptor: req.annotations.manifest_descriptor.clone(),
            index_descriptor: req.annotations.index_descriptor.clone(),
        },
    })
}

fn pull_text(p: kiln_backend::PullPolicy) -> &'static str {
    match p {
        kiln_backend::PullPolicy::Missing => "missing",
        kiln_backend::PullPolicy::Always => "always",
        kiln_backend::PullPolicy::Newer => "newer",
        kiln_backend::PullPolicy::Never => "never",
    }
}

/// Runs `work` until it ends or the build's interrupt flag is set (checked
/// ten times a second); dropping `work` then drops its request, which
/// resets the HTTP/2 stream.
async fn until_interrupted<T>(
    req: &BuildRequest,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, BuildError> {
    let watch = async {
        while !req.interrupt.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        done = work => done.map_err(to_build_error),
        () = watch => Err(BuildError::Interrupted),
    }
}

fn to_build_error(e: Error) -> BuildError {
    match e {
        Error::Remote(body) => remote_build_error(body),
        other => BuildError::Request(other.to_string()),
    }
}

fn remote_build_error(body: ErrorBody) -> BuildError {
    match body.kind {
        ErrorKind::Interrupted => BuildError::Interrupted,
        ErrorKind::NotSupported => BuildError::NotSupported(body.message),
        _ => BuildError::Request(body.message),
    }
}

impl RemoteBackend {
    async fn run(
        &self,
        req: &BuildRequest,
        mut spec: BuildSpec,
        local: Option<(PathBuf, PathBuf)>,
        events: &EventSink,
        archive: &Path,
    ) -> Result<Box<WireImage>, BuildError> {
        let mut conn = self.client.connect().await.map_err(to_build_error)?;
        if let Some((dir, dockerfile)) = local {
            // Only what the build reads goes: the daemon plans the build
            // (its bases' ONBUILD triggers included) and names it.
            let reads = conn.context_paths(&spec).await.map_err(to_build_error)?;
            let local: LocalContext = tokio::task::spawn_blocking(move || {
                context::scan(&dir, &dockerfile, reads.as_deref())
            })
            .await
            .map_err(|e| BuildError::Request(format!("scanning the context: {e}")))?
            .map_err(to_build_error)?;
            let digests: Vec<String> = local.files.keys().cloned().collect();
            let missing = conn.missing(digests).await.map_err(to_build_error)?;
            // The counts are the test of "only what the daemon lacks": a
            // second build of the same context uploads 0 files.
            let what = format!(
                "context: {} entries, {} of {} files uploaded",
                local.entries.len(),
                missing.len(),
                local.files.len(),
            );
            events.send(BuildEvent::Transfer {
                what: what.clone(),
                bytes: 0,
                done: false,
            });
            let mut bytes = 0;
            for digest in &missing {
                if req.interrupt.load(Ordering::SeqCst) {
                    return Err(BuildError::Interrupted);
                }
                let (path, _) = &local.files[digest];
                bytes += until_interrupted(req, conn.upload(digest, path)).await?;
                events.send(BuildEvent::Transfer {
                    what: what.clone(),
                    bytes,
                    done: false,
                });
            }
            events.send(BuildEvent::Transfer {
                what,
                bytes,
                done: true,
            });
            spec.context = Some(local.entries);
        }
        let mut stream = conn.start_build(&spec).await.map_err(to_build_error)?;
        let outcome = loop {
            // On an interrupt the stream is dropped, which resets it; the
            // daemon interrupts the build when its response body goes.
            let frame = until_interrupted(req, stream.next()).await?;
            match frame {
                None => {
                    return Err(BuildError::Request(format!(
                        "the kiln daemon at {} ended the build's stream without a result",
                        self.client.endpoint
                    )))
                }
                Some(Frame::Accepted { .. }) => {}
                Some(Frame::Event { event }) => match event {
                    // This side reports the end, after the image is home.
                    BuildEvent::BuildComplete { .. } | BuildEvent::BuildFailed { .. } => {}
                    other => events.send(other),
                },
                Some(Frame::Done { image, result }) => break Ok((image, result)),
                Some(Frame::Error { error }) => break Err(error),
            }
        };
        let (image, result) = outcome.map_err(remote_build_error)?;
        if let Some(id) = result {
            let what = format!("image {} from the daemon", image.manifest.digest);
            events.send(BuildEvent::Transfer {
                what: what.clone(),
                bytes: 0,
                done: false,
            });
            let bytes = until_interrupted(req, conn.fetch_result(&id, archive)).await?;
            events.send(BuildEvent::Transfer {
                what,
                bytes,
                done: true,
            });
        }
        Ok(image)
    }

    fn build_inner(
        &self,
        req: &BuildRequest,
        events: &EventSink,
    ) -> Result<BuiltImage, BuildError> {
        let started = Instant::now();
        let spec = spec_for(req)?;
        let local = match &req.context {
            None => None,
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(BuildError::Request(format!(
                        "the build context {} is not a directory; give an existing directory",
                        dir.display()
                    )));
                }
                let dockerfile = req
                    .dockerfile
                    .path
                    .clone()
                    .unwrap_or_else(|| dir.join("Dockerfile"));
                Some((dir.clone(), dockerfile))
            }
        };
        let scratch = tempfile::Builder::new()
            .prefix("remote-")
            .tempdir_in(self.store.tmp_dir())
            .map_err(|e| BuildError::Output {
                path: self.store.tmp_dir().to_path_buf(),
                source: e,
            })?;
        let archive = scratch.path().join("image.tar");
        let export = spec.export;
        let runtime = runtime().map_err(to_build_error)?;
        let image = runtime.block_on(self.run(req, spec, local, events, &archive))?;
        let mut built = BuiltImage {
            manifest: image.manifest.clone(),
            config: image.config.clone(),
            tags: Vec::new(),
            layers: image.layers,
            size: image.size,
            build_time: Duration::ZERO,
            is_index: image.is_index,
        };
        if export {
            let loaded = self.store.load(&archive)?;
            let manifest = loaded
                .into_iter()
                .map(|i| i.descriptor)
                .find(|d| d.digest == image.manifest.digest)
                .ok_or_else(|| {
                    BuildError::Request(format!(
                        "the daemon's archive does not hold the image it built, {}",
                        image.manifest.digest
                    ))
                })?;
            let archive = [ArchiveImage {
                descriptor: manifest.clone(),
                tags: req.tags.clone(),
            }];
            for output in &req.outputs {
                match output {
                    Output::Image { .. } => {
                        for tag in &req.tags {
                            self.store.tag(tag, &manifest)?;
                            built.tags.push(tag.clone());
                        }
                    }
                    Output::Oci { dest } => self.store.export_oci(&archive, dest)?,
                    Output::Docker { dest } => self.store.save_docker(&archive, dest)?,
                    Output::Local { .. } | Output::Tar { .. } => {
                        unreachable!("refused by spec_for")
                    }
                }
            }
        } else {
            // Pushed by the daemon under these names.
            built.tags = image
                .tags
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .collect();
        }
        built.build_time = started.elapsed();
        Ok(built)
    }
}

impl BuildBackend for RemoteBackend {
    fn name(&self) -> &'static str {
        "remote"
    }

    fn is_available(&self) -> Result<String, Unavailable> {
        self.client.probe()
    }

    fn build(&self, req: &BuildRequest, events: &EventSink) -> Result<BuiltImage, BuildError> {
        events.finish(self.build_inner(req, events))
    }

    fn tag(&self, _image: &str, _new_name: &str) -> Result<(), BuildError> {
        Err(self.unsupported("kiln tag"))
    }

    fn push(
        &self,
        _image: &str,
        _dest: Option<&Reference>,
        _events: &EventSink,
    ) -> Result<Pushed, BuildError> {
        Err(self.unsupported("kiln push (use kiln build --push to push from the daemon)"))
    }

    fn manifest_create(&self, _list: &Reference) -> Result<(), BuildError> {
        Err(self.unsupported("kiln manifest create"))
    }

    fn manifest_add(&self, _list: &Reference, _image: &str) -> Result<(), BuildError> {
        Err(self.unsupported("kiln manifest add"))
    }

    fn manifest_push(&self, _list: &Reference, _dest: &Reference) -> Result<Pushed, BuildError> {
        Err(self.unsupported("kiln manifest push"))
    }
}
