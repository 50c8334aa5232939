//! The daemon: HTTP/2 over a unix socket or mutual TLS, the endpoints of
//! `docs/remote.md`, builds run on a backend its caller provides.
//!
//! Each build runs on a blocking thread of its own; its events go to the
//! client as they happen. The response body owns a guard that sets the
//! build's interrupt flag when the body is dropped before the build ended,
//! which is what hyper does when the client resets the stream, closes the
//! connection or vanishes: a client's Ctrl-C, or a killed client, stops its
//! build on the daemon.

use crate::context::{materialise, BlobCache};
use crate::proto::{
    BlobStored, BuildSpec, ContextPathsResponse, ErrorBody, ErrorKind, Frame, Info, MissingRequest,
    MissingResponse, WireImage,
};
use crate::Error;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kiln_backend::events::EventSink;
use kiln_backend::Output;
use kiln_backend::{Annotations, BuildError, PullPolicy};
use kiln_backend::{BuildBackend, BuildRequest, Dockerfile, NamedContext, SecretSource};
use kiln_oci::reference::Reference;
use kiln_oci::{Compression, Platform};
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};

/// Makes the backend a build runs on: one per build, so each build's
/// store lease ends with it.
pub type BackendFactory = Arc<dyn Fn() -> Result<Box<dyn BuildBackend>, BuildError> + Send + Sync>;

/// A response body: whole, or streamed.
type Body = UnsyncBoxBody<Bytes, io::Error>;

/// The largest JSON request body (a build's context manifest for a few
/// hundred thousand files).
const MAX_JSON: usize = 256 << 20;

/// How often the daemon pings an idle connection, and how long it waits
/// for the answer before it drops the connection.
const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How long an exported image waits for its client to fetch it.
const RESULT_TTL: Duration = Duration::from_secs(600);

/// A kiln daemon.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    state: PathBuf,
    cache: BlobCache,
    factory: BackendFactory,
    log: Arc<dyn Fn(&str) + Send + Sync>,
    next: AtomicU64,
}

impl Server {
    /// A daemon keeping its state in `state_dir` (`blobs/`: the context
    /// cache, kept across runs; `builds/` and `results/`: per build,
    /// emptied at start), building with backends from `factory`, and
    /// reporting what it does (connections refused, builds started and
    /// ended, uploads, cancellations) to `log`, one line each.
    pub fn new(
        state_dir: &Path,
        factory: BackendFactory,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Server, Error> {
        let cache = BlobCache::open(&state_dir.join("blobs"))?;
        for dir in ["builds", "results"] {
            let dir = state_dir.join(dir);
            // What an earlier daemon left: no client can ask for it now.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        }
        Ok(Server {
            inner: Arc::new(Inner {
                state: state_dir.to_path_buf(),
                cache,
                factory,
                log: Arc::new(log),
                next: AtomicU64::new(1),
            }),
        })
    }

    /// Serves connections on a unix socket until the listener fails.
    #[cfg(unix)]
    pub async fn serve_unix(&self, listener: tokio::net::UnixListener) -> Result<(), Error> {
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| Error::Connect {
                endpoint: "the unix socket".into(),
                message: e.to_string(),
            })?;
            let inner = self.inner.clone();
            tokio::spawn(serve_connection(inner, stream, "unix socket client".into()));
        }
    }

    /// Serves connections on TCP with mutual TLS until the listener fails.
    /// A client without a certificate signed by the configuration's CA
    /// fails the handshake; no request of its is read.
    pub async fn serve_tls(
        &self,
        listener: tokio::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<(), Error> {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let (stream, peer) = listener.accept().await.map_err(|e| Error::Connect {
                endpoint: "the TCP listener".into(),
                message: e.to_string(),
            })?;
            let inner = self.inner.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor.accept(stream).await {
                    Ok(tls) => serve_connection(inner, tls, peer.to_string()).await,
                    Err(e) => (inner.log)(&format!("refused {peer}: TLS handshake failed: {e}")),
                }
            });
        }
    }
}

async fn serve_connection<S>(inner: Arc<Inner>, io: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn({
        let inner = inner.clone();
        move |req| {
            let inner = inner.clone();
            async move { Ok::<_, Infallible>(route(inner, req).await) }
        }
    });
    // Pings find a client whose host vanished without closing the
    // connection (a cut network), so its build is interrupted too.
    if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .adaptive_window(true)
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        (inner.log)(&format!("connection from {peer} ended: {e}"));
    }
}

async fn route(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.split('/').collect();
    let result = match (&method, parts.as_slice()) {
        (&Method::GET, ["", "v1", "info"]) => info(&inner).await,
        (&Method::POST, ["", "v1", "blobs", "missing"]) => missing(&inner, req).await,
        (&Method::POST, ["", "v1", "context-paths"]) => context_paths(&inner, req).await,
        (&Method::PUT, ["", "v1", "blobs", digest]) => put_blob(&inner, digest, req).await,
        (&Method::POST, ["", "v1", "builds"]) => build(&inner, req).await,
        (&Method::GET, ["", "v1", "results", id]) => result(&inner, id).await,
        _ => Err(Error::Remote(ErrorBody {
            kind: ErrorKind::NotFound,
            message: format!("no endpoint {method} {path}"),
        })),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn error_body(err: &Error) -> ErrorBody {
    match err {
        Error::Remote(body) => body.clone(),
        Error::Protocol(m) | Error::Config(m) => ErrorBody {
            kind: ErrorKind::BadRequest,
            message: m.clone(),
        },
        other => ErrorBody {
            kind: ErrorKind::Failed,
            message: other.to_string(),
        },
    }
}

fn error_response(err: &Error) -> Response<Body> {
    let body = error_body(err);
    let status = match body.kind {
        ErrorKind::BadRequest | ErrorKind::Dockerfile => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::NotSupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Interrupted | ErrorKind::Failed => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_response(status, &body)
}

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Error> {
    let bytes = Limited::new(req.into_body(), MAX_JSON)
        .collect()
        .await
        .map_err(|e| Error::Protocol(format!("reading the request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(format!("the request body: {e}")))
}

async fn info(inner: &Inner) -> Result<Response<Body>, Error> {
    let factory = inner.factory.clone();
    let info = tokio::task::spawn_blocking(move || {
        let backend = factory().map_err(|e| Error::Config(e.to_string()))?;
        let (available, detail) = match backend.is_available() {
            Ok(what) => (true, what),
            Err(why) => (false, why.to_string()),
        };
        Ok::<_, Error>(Info {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: backend.name().to_string(),
            detail,
            available,
        })
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))??;
    Ok(json_response(StatusCode::OK, &info))
}

async fn missing(inner: &Inner, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let asked: MissingRequest = read_json(req).await?;
    let missing = inner.cache.missing(&asked.digests)?;
    Ok(json_response(StatusCode::OK, &MissingResponse { missing }))
}

/// What of its context the build in the request reads: the backend plans
/// it (pulling its base images, which the build then finds in the store).
async fn context_paths(inner: &Inner, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let spec: BuildSpec = read_json(req).await?;
    let request = to_request(&spec, None, None)?;
    let factory = inner.factory.clone();
    let paths = tokio::task::spawn_blocking(move || factory()?.context_paths(&request))
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?
        .map_err(|e| Error::Remote(build_error_body(&e)))?;
    Ok(json_response(
        StatusCode::OK,
        &ContextPathsResponse { paths },
    ))
}

async fn put_blob(
    inner: &Inner,
    digest: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let mut upload = inner.cache.upload(digest)?;
    // A client that vanishes ends the body with an error, or has hyper
    // drop this handler; either way the dropped upload removes its
    // temporary file, and the guard says so.
    let mut guard = Abandoned {
        what: format!("upload of {digest}"),
        log: inner.log.clone(),
        armed: true,
    };
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Protocol(format!("the upload broke off: {e}")))?;
        if let Ok(data) = frame.into_data() {
            upload.write(&data)?;
        }
    }
    guard.armed = false;
    let size = upload.finish()?;
    (inner.log)(&format!("stored context blob {digest} ({size} bytes)"));
    Ok(json_response(
        StatusCode::CREATED,
        &BlobStored {
            digest: digest.to_string(),
            size,
        },
    ))
}

/// Logs that a request ended before its handler finished (the client went
/// away mid-upload).
struct Abandoned {
    what: String,
    log: Arc<dyn Fn(&str) + Send + Sync>,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if self.armed {
            (self.log)(&format!(
                "{} abandoned before its end; nothing stored",
                self.what
            ));
        }
    }
}

/// Sets a build's interrupt flag when the response body goes away before
/// the build ended.
struct CancelOnDrop {
    interrupt: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
    id: String,
    log: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            self.interrupt.store(true, Ordering::SeqCst);
            (self.log)(&format!(
                "build {}: the client went away; interrupting the build",
                self.id
            ));
        }
    }
}

async fn build(inner: &Inner, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let spec: BuildSpec = read_json(req).await?;
    let id = format!("b{}", inner.next.fetch_add(1, Ordering::SeqCst));
    let dir = inner.state.join("builds").join(&id);
    let result_path = spec
        .export
        .then(|| inner.state.join("results").join(format!("{id}.tar")));
    let entries = spec.context.as_ref().map_or(0, Vec::len);
    let context = match &spec.context {
        None => None,
        Some(list) => {
            let ctx = dir.join("context");
            std::fs::create_dir_all(&ctx).map_err(Error::io("creating", &ctx))?;
            let cache = inner.cache.clone();
            let list = list.clone();
            let at = ctx.clone();
            let made = tokio::task::spawn_blocking(move || materialise(&cache, &list, &at))
                .await
                .map_err(|e| Error::Protocol(e.to_string()))?;
            if let Err(e) = made {
                let _ = std::fs::remove_dir_all(&dir);
                (inner.log)(&format!("build {id} refused: {e}"));
                return Err(e);
            }
            Some(ctx)
        }
    };
    let request = match to_request(&spec, context, result_path.clone()) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    (inner.log)(&format!(
        "build {id} started ({entries} context entries materialised)"
    ));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
    let _ = tx.send(Frame::Accepted {
        build: id.clone(),
        entries,
    });
    let finished = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop {
        interrupt: request.interrupt.clone(),
        finished: finished.clone(),
        id: id.clone(),
        log: inner.log.clone(),
    };
    let factory = inner.factory.clone();
    let log = inner.log.clone();
    let runtime = tokio::runtime::Handle::current();
    // A thread of its own, outside the runtime: the engine blocks on its
    // own runtime for registry calls.
    std::thread::spawn(move || {
        let events = tx.clone();
        let sink = EventSink::callback(move |event| {
            let _ = events.send(Frame::Event { event });
        });
        let outcome = factory().and_then(|backend| backend.build(&request, &sink));
        drop(sink);
        finished.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_dir_all(&dir);
        let frame = match outcome {
            Ok(built) => {
                log(&format!("build {id} done: {}", built.image_id()));
                let result = result_path.map(|path| {
                    // An archive nobody fetches goes after a while.
                    let stale = path.clone();
                    runtime.spawn(async move {
                        tokio::time::sleep(RESULT_TTL).await;
                        let _ = tokio::fs::remove_file(stale).await;
                    });
                    id.clone()
                });
                Frame::Done {
                    image: Box::new(WireImage {
                        manifest: built.manifest.clone(),
                        config: built.config.clone(),
                        tags: built.tags.iter().map(ToString::to_string).collect(),
                        layers: built.layers,
                        size: built.size,
                        build_time_ms: built.build_time.as_millis() as u64,
                        is_index: built.is_index,
                    }),
                    result,
                }
            }
            Err(e) => {
                log(&format!("build {id} failed: {e}"));
                if let Some(path) = result_path {
                    let _ = std::fs::remove_file(path);
                }
                Frame::Error {
                    error: build_error_body(&e),
                }
            }
        };
        let _ = tx.send(frame);
    });
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let frame = rx.recv().await?;
        let mut line = serde_json::to_vec(&frame).unwrap_or_default();
        line.push(b'\n');
        Some((
            Ok::<_, io::Error>(BodyFrame::data(Bytes::from(line))),
            (rx, guard),
        ))
    });
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// The error a build's stream ends with.
pub(crate) fn build_error_body(e: &BuildError) -> ErrorBody {
    let kind = match e {
        BuildError::Dockerfile(_) => ErrorKind::Dockerfile,
        BuildError::Request(_) => ErrorKind::BadRequest,
        BuildError::NotSupported(_) => ErrorKind::NotSupported,
        BuildError::Interrupted => ErrorKind::Interrupted,
        _ => ErrorKind::Failed,
    };
    ErrorBody {
        kind,
        message: e.to_string(),
    }
}

fn refuse(kind: ErrorKind, message: String) -> Error {
    Error::Remote(ErrorBody { kind, message })
}

/// The engine's request for `spec`, building on `context` and, with
/// `result`, also writing the image there as an OCI archive.
fn to_request(
    spec: &BuildSpec,
    context: Option<PathBuf>,
    result: Option<PathBuf>,
) -> Result<BuildRequest, Error> {
    let bad = |m: String| refuse(ErrorKind::BadRequest, m);
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = b64
        .decode(&spec.dockerfile)
        .map_err(|e| bad(format!("dockerfile: not base64: {e}")))?;
    let mut req = BuildRequest::new(
        Dockerfile {
            name: spec.dockerfile_name.clone(),
            bytes,
            path: None,
        },
        context,
    );
    req.build_args = spec.build_args.clone();
    req.target = spec.target.clone();
    let platform = |p: &String| {
        p.parse::<Platform>()
            .map_err(|e| bad(format!("platform {p:?}: {e}")))
    };
    req.platform = spec.platform.as_ref().map(platform).transpose()?;
    req.platforms = spec
        .platforms
        .iter()
        .map(platform)
        .collect::<Result<_, _>>()?;
    req.tags = spec
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(|e| bad(format!("tag {t:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    req.labels = spec.labels.clone();
    req.no_cache = spec.no_cache;
    req.no_cache_filter = spec.no_cache_filter.clone();
    if let Some(pull) = &spec.pull {
        req.pull = pull.parse::<PullPolicy>().map_err(bad)?;
    }
    req.squash = spec.squash;
    for (name, image) in &spec.image_contexts {
        Reference::parse(image).map_err(|e| bad(format!("build context {name}: {e}")))?;
        req.build_contexts
            .insert(name.clone(), NamedContext::Image(image.clone()));
    }
    req.outputs = vec![Output::Image { push: spec.push }];
    if let Some(dest) = result {
        req.outputs.push(Output::Oci { dest });
    }
    if let Some(c) = &spec.compression {
        req.compression = parse_compression(c).map_err(bad)?;
    }
    req.docker_media_types = spec.docker_media_types;
    req.source_date_epoch = spec.source_date_epoch;
    for (id, value) in &spec.secrets {
        let value = b64
            .decode(value)
            .map_err(|e| bad(format!("secret {id}: not base64: {e}")))?;
        req.secrets.insert(id.clone(), SecretSource::Value(value));
    }
    req.runtime = spec.runtime.clone();
    req.allow_network_host = spec.allow_network_host;
    req.annotations = Annotations {
        manifest: spec.annotations.manifest.clone(),
        index: spec.annotations.index.clone(),
        manifest_descriptor: spec.annotations.manifest_descriptor.clone(),
        index_descriptor: spec.annotations.index_descriptor.clone(),
    };
    Ok(req)
}

/// `gzip:LEVEL`, `zstd:LEVEL` or `uncompressed`, as [`compression_text`]
/// writes them.
pub(crate) fn parse_compression(text: &str) -> Result<Compression, String> {
    let level = |l: &str| {
        l.parse::<i64>()
            .map_err(|_| format!("compression {text:?}: bad level"))
    };
    match text.split_once(':') {
        Some(("gzip", l)) => Ok(Compression::Gzip(level(l)? as u32)),
        Some(("zstd", l)) => Ok(Compression::Zstd(level(l)? as i32)),
        None if text == "uncompressed" => Ok(Compression::None),
        _ => Err(format!(
            "compression {text:?}: expected gzip:LEVEL, zstd:LEVEL or uncompressed"
        )),
    }
}

/// The wire text of a compression.
pub(crate) fn compression_text(c: Compression) -> String {
    match c {
        Compression::Gzip(l) => format!("gzip:{l}"),
        Compression::Zstd(l) => format!("zstd:{l}"),
        Compression::None => "uncompressed".into(),
    }
}

async fn result(inner: &Inner, id: &str) -> Result<Response<Body>, Error> {
    let not_found = || {
        refuse(
            ErrorKind::NotFound,
            format!("no result {id:?}: it was fetched already, expired, or never made"),
        )
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(not_found());
    }
    let path = inner.state.join("results").join(format!("{id}.tar"));
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found())?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    // Fetched once: unlinked now, the open file still reads to its end.
    let _ = tokio::fs::remove_file(&path).await;
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
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-tar"),
    );
    if let Some(len) = len {
        resp.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, len.into());
    }
    Ok(resp)
}
