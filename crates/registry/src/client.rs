//! The HTTP side: one connection pool per registry host (TLS settings can
//! differ per host), scheme discovery for insecure registries, and requests
//! with authentication and retries with backoff.

pub(crate) use crate::auth::Scope;
use crate::auth::{self, AuthState, HostAuth, Transport};
use crate::credentials::{AuthFiles, Credentials};
use crate::errors::{detail_from_body, Error, ErrorKind, Result, Target};
use kiln_oci::Digest;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a [`Client`] connects and authenticates. [`ClientOptions::new`]
/// gives the defaults; the caller adds what its environment says.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) that may use plain HTTP or a certificate
    /// that does not verify. HTTPS is tried first.
    pub insecure_registries: Vec<String>,
    /// When false, every registry is treated as insecure.
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) trusted for every registry.
    pub ca_certs: Vec<PathBuf>,
    /// Directories holding `<host[:port]>/*.crt` CA files, as docker's and
    /// podman's `certs.d`.
    pub cert_dirs: Vec<PathBuf>,
    /// Where stored credentials are found.
    pub auth_files: AuthFiles,
    /// Credentials given directly, by registry; they win over stored ones.
    pub credentials: HashMap<String, Credentials>,
    /// Credentials for every registry without its own in `credentials`,
    /// ahead of stored ones (podman's `--creds`).
    pub credentials_for_all: Option<Credentials>,
    /// How many times a transient failure is retried.
    pub retries: u32,
    /// The first retry's delay; each later one doubles it.
    pub backoff: Duration,
    /// The stall timeout: the longest a transfer may go without progress
    /// (waiting for response headers, between two reads of a body, or an
    /// upload's body not moving). A slow transfer that keeps moving is
    /// never cut, however long it takes.
    pub timeout: Duration,
    /// The longest a TCP connection may take to open.
    pub connect_timeout: Duration,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Push blobs larger than this in chunks of this size (`PATCH`); `None`
    /// pushes every blob in one request.
    pub chunk_size: Option<u64>,
    /// Pass foreign layers (descriptors with `urls`) through: a pull does
    /// not fetch them, a push keeps their descriptors byte for byte and
    /// never sends their bytes. Off (the default), a pull fetches them like
    /// any layer and a push sends them as ordinary layers
    /// ([`kiln_oci::Descriptor::distributable`]), which every registry accepts.
    pub keep_foreign_layers: bool,
    /// What `registries.conf` says: blocked registries, `insecure` ones,
    /// rewritten locations and pull mirrors.
    pub registries: crate::Registries,
}

impl ClientOptions {
    /// Defaults, with credentials from `auth_files` and CA files from the
    /// system's certs.d directories (`/etc/containers/certs.d`,
    /// `/etc/docker/certs.d`); the caller adds the user's (`~/.docker/certs.d`)
    /// and anything else its environment says, as this crate reads none.
    pub fn new(auth_files: AuthFiles) -> ClientOptions {
        ClientOptions {
            insecure_registries: Vec::new(),
            tls_verify: true,
            ca_certs: Vec::new(),
            cert_dirs: vec![
                PathBuf::from("/etc/containers/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ],
            auth_files,
            credentials: HashMap::new(),
            credentials_for_all: None,
            retries: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            concurrency: 4,
            chunk_size: None,
            keep_foreign_layers: false,
            registries: crate::Registries::default(),
        }
    }

    fn is_insecure(&self, host: &str) -> bool {
        !self.tls_verify
            || self.insecure_registries.iter().any(|h| h == host)
            || self.registries.is_insecure(host)
    }
}

/// True for a registry on a loopback address (`localhost`, 127.0.0.0/8,
/// `::1`), which may speak plain HTTP without being listed as insecure, as
/// docker allows for 127.0.0.0/8.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host that serves a registry's API. Docker Hub is named `docker.io`
/// (in image names, credentials, `registries.conf`) but its API answers at
/// `registry-1.docker.io`, as containerd's `DefaultHost` and docker map it;
/// `https://docker.io/v2/` is not a registry.
fn api_host(name: &str) -> &str {
    if name == "docker.io" {
        "registry-1.docker.io"
    } else {
        name
    }
}

/// True when an HTTPS attempt failed on the server's certificate: the
/// server speaks TLS, so falling back to plain HTTP would only hide that.
fn is_certificate_error(e: &reqwest::Error) -> bool {
    error_chain(e).to_ascii_lowercase().contains("certificate")
}

/// A registry client. Cheap to share; holds a connection pool and the
/// tokens it was given for each registry.
pub struct Client {
    pub(crate) opts: ClientOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) http: reqwest::Client,
    /// For uploads: without reqwest's read timeout, which counts from the
    /// start of a request, so would cut a long upload however steadily it
    /// moved; [`Client::send_upload`] watches the body's progress instead.
    upload_http: reqwest::Client,
    /// `https://host` or `http://host`, once known.
    base: tokio::sync::OnceCell<String>,
    pub(crate) auth: tokio::sync::Mutex<AuthState>,
}

impl Host {
    /// What authenticating needs of this host.
    pub(crate) fn auth(&self) -> HostAuth<'_> {
        HostAuth {
            name: &self.name,
            http: &self.http,
            state: &self.auth,
        }
    }
}

/// Where [`Client::send_via`] sends a request: the host, its base URL (or
/// the whole URL, off the registry), and for an upload its progress.
struct Route<'a> {
    host: &'a Host,
    base: &'a str,
    progress: Option<&'a Progress>,
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: ClientOptions) -> Client {
        Client {
            opts,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The connection pool and auth state for `name` (`host[:port]`);
    /// `target` and `action` only label errors.
    pub(crate) fn host(
        &self,
        name: &str,
        target: &Target,
        action: &'static str,
    ) -> Result<Arc<Host>> {
        self.host_for(name, false, target, action)
    }

    /// [`Client::host`] for a registry, or with `foreign` for the host of a
    /// foreign layer's URL, whose client checks every address and redirect
    /// ([`crate::foreign`]); the two never share a pool.
    fn host_for(
        &self,
        name: &str,
        foreign: bool,
        target: &Target,
        action: &'static str,
    ) -> Result<Arc<Host>> {
        let key = if foreign {
            format!("foreign {name}")
        } else {
            name.to_string()
        };
        let mut hosts = self.hosts.lock().expect("host table poisoned");
        if let Some(h) = hosts.get(&key) {
            return Ok(h.clone());
        }
        let err = |kind| Error {
            action,
            target: Box::new(target.clone()),
            kind,
        };
        let http = self.build_http(name, true, foreign).map_err(err)?;
        let upload_http = self.build_http(name, false, foreign).map_err(err)?;
        let host = Arc::new(Host {
            name: name.to_string(),
            http,
            upload_http,
            base: tokio::sync::OnceCell::new(),
            auth: tokio::sync::Mutex::new(AuthState::default()),
        });
        hosts.insert(key, host.clone());
        Ok(host)
    }

    /// An HTTP client for `host`; `read_timeout`: with the stall timeout
    /// on each read; `foreign`: for foreign layers' URLs.
    fn build_http(
        &self,
        host: &str,
        read_timeout: bool,
        foreign: bool,
    ) -> Result<reqwest::Client, ErrorKind> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.opts.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60));
        if read_timeout {
            builder = builder.read_timeout(self.opts.timeout);
        }
        if foreign {
            let insecure = &self.opts.insecure_registries;
            builder = builder
                .dns_resolver(Arc::new(crate::foreign::PublicOnly {
                    trusted: crate::foreign::trusted_hosts(insecure),
                }))
                .redirect(crate::foreign::redirect_policy(insecure.clone()));
        }
        if self.opts.is_insecure(host) {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let mut cas = self.opts.ca_certs.clone();
        for dir in &self.opts.cert_dirs {
            if let Ok(entries) = std::fs::read_dir(dir.join(host)) {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                    .collect();
                found.sort();
                cas.extend(found);
            }
        }
        for path in cas {
            let pem = std::fs::read(&path).map_err(|source| ErrorKind::Io {
                action: "reading the CA certificate",
                path: path.display().to_string(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ErrorKind::Invalid(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ErrorKind::Invalid(format!(
                    "{} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .map_err(|e| ErrorKind::Invalid(format!("cannot set up HTTP for {host}: {e}")))
    }

    /// The base URL of a registry: HTTPS, or for insecure registries
    /// whichever of HTTPS and HTTP answers.
    pub(crate) async fn base(
        &self,
        host: &Host,
        target: &Target,
        action: &'static str,
    ) -> Result<String> {
        let base = host
            .base
            .get_or_try_init(|| async {
                let https = format!("https://{}", api_host(&host.name));
                let insecure = self.opts.is_insecure(&host.name);
                if !insecure && !is_loopback(&host.name) {
                    return Ok(https);
                }
                match host.http.get(format!("{https}/v2/")).send().await {
                    Ok(_) => Ok(https),
                    Err(e) if e.is_timeout() => Err(self.fail(action, target, &https, e, 1)),
                    // A loopback registry speaking TLS keeps its
                    // certificate checked unless listed as insecure.
                    Err(e) if !insecure && is_certificate_error(&e) => Ok(https),
                    Err(_) => Ok(format!("http://{}", api_host(&host.name))),
                }
            })
            .await?;
        Ok(base.clone())
    }

    /// Sends the request `build` makes (called again for each attempt),
    /// authenticating for `scope`, retrying transient failures. Returns any
    /// response that is not a 401, 429 or 5xx; the caller judges the rest.
    pub(crate) async fn send(
        &self,
        target: &Target,
        action: &'static str,
        scope: &Scope,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        self.send_marking(target, action, scope, None, build).await
    }

    /// [`Client::send`] for a request whose body streams a blob and marks
    /// `progress` as it goes: an attempt fails once neither the body nor
    /// the answer moved for the stall timeout. It makes one attempt (a
    /// 401 aside); the caller retries in a new upload session.
    pub(crate) async fn send_upload(
        &self,
        target: &Target,
        action: &'static str,
        scope: &Scope,
        progress: &Progress,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        self.send_marking(target, action, scope, Some(progress), build)
            .await
    }

    /// [`Client::send`] and [`Client::send_upload`]: the registry's route,
    /// with the upload's progress when there is one.
    async fn send_marking(
        &self,
        target: &Target,
        action: &'static str,
        scope: &Scope,
        progress: Option<&Progress>,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        let host = self.host(&target.registry, target, action)?;
        let base = self.base(&host, target, action).await?;
        let route = Route {
            host: &host,
            base: &base,
            progress,
        };
        self.send_via(route, target, action, scope, build).await
    }

    /// Sends a GET of `url`, which is not on the registry (a foreign
    /// layer's URL), with that host's TLS settings and credentials, never
    /// the registry's; retried as [`Client::send`] does. `target` labels errors.
    pub(crate) async fn send_url(
        &self,
        url: &str,
        target: &Target,
        action: &'static str,
        range_from: u64,
    ) -> Result<Response> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Error {
            action,
            target: Box::new(target.clone()),
            kind: ErrorKind::Invalid(format!("the layer URL {url:?} is not a URL: {e}")),
        })?;
        crate::foreign::check_url(&parsed, &self.opts.insecure_registries).map_err(|e| Error {
            action,
            target: Box::new(target.clone()),
            kind: ErrorKind::Invalid(e.0),
        })?;
        let name = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(Error {
                    action,
                    target: Box::new(target.clone()),
                    kind: ErrorKind::Invalid(format!("the layer URL {url:?} names no host")),
                })
            }
        };
        let host = self.host_for(&name, true, target, action)?;
        let route = Route {
            host: &host,
            base: url,
            progress: None,
        };
        self.send_via(route, target, action, &Scope::none(), |http, _| {
            with_range(http.get(url), range_from)
        })
        .await
    }

    async fn send_via(
        &self,
        route: Route<'_>,
        target: &Target,
        action: &'static str,
        scope: &Scope,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response> {
        let Route {
            host,
            base,
            progress,
        } = route;
        let base = base.to_string();
        let http = if progress.is_some() {
            &host.upload_http
        } else {
            &host.http
        };
        let err = |kind| Error {
            action,
            target: Box::new(target.clone()),
            kind,
        };
        // An upload's body is sent once: a retry belongs to a new upload
        // session, which the caller starts (the registry may hold part of
        // a cut body, and then the old session is no good).
        let retries = if progress.is_some() {
            0
        } else {
            self.opts.retries
        };
        let mut attempt = 0;
        let mut reauthenticated = false;
        'retry: loop {
            attempt += 1;
            let (kind, retry_after) = 'attempt: {
                // A token server that fails for a moment is retried as the
                // registry would be; other auth failures end the request.
                let auth = match auth::header(self, &host.auth(), scope).await {
                    Ok(auth) => auth,
                    Err(kind) if kind.is_transient() => {
                        break 'attempt (kind.after_attempts(attempt), None)
                    }
                    Err(kind) => return Err(err(kind)),
                };
                let mut request = build(http, &base);
                if let Some(value) = auth {
                    request = request.header(reqwest::header::AUTHORIZATION, value);
                }
                let sent = match progress {
                    None => Some(request.send().await),
                    Some(progress) => {
                        progress.mark();
                        tokio::select! {
                            sent = request.send() => Some(sent),
                            () = progress.stalled(self.opts.timeout) => None,
                        }
                    }
                };
                match sent {
                    None => (
                        ErrorKind::Timeout {
                            attempts: attempt,
                            limit: self.opts.timeout,
                        },
                        None,
                    ),
                    Some(Err(e)) => {
                        let url = e.url().map(shown_url).unwrap_or_else(|| base.clone());
                        let failure = self.fail(action, target, &url, e, attempt);
                        if !failure.kind.is_transient() {
                            return Err(failure);
                        }
                        (failure.kind, None)
                    }
                    Some(Ok(resp)) if resp.status() == StatusCode::UNAUTHORIZED => {
                        let challenge = resp
                            .headers()
                            .get_all(reqwest::header::WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .find_map(crate::challenge::Challenge::parse);
                        let detail = detail_from_body(&small_body(resp, self.opts.timeout).await);
                        if !reauthenticated {
                            if let Some(challenge) = challenge {
                                reauthenticated = true;
                                host.auth.lock().await.learn(challenge);
                                attempt -= 1;
                                continue 'retry;
                            }
                        }
                        return Err(err(ErrorKind::Unauthorized {
                            registry: target.registry.clone(),
                            detail,
                        }));
                    }
                    Some(Ok(resp)) if crate::errors::is_transient_status(resp.status()) => {
                        let status = resp.status();
                        let retry_after = resp
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .map(|s| Duration::from_secs(s.min(30)));
                        let detail = detail_from_body(&small_body(resp, self.opts.timeout).await);
                        // distribution answers 500 to a manifest whose layer
                        // URLs it refuses; that verdict does not change.
                        let verdict = MANIFEST_VERDICTS.iter().any(|c| detail.contains(c));
                        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                            ErrorKind::TooManyRequests { attempts: attempt }
                        } else {
                            ErrorKind::Server {
                                status: status.as_u16(),
                                attempts: attempt,
                                detail,
                            }
                        };
                        if verdict {
                            return Err(err(kind));
                        }
                        (kind, retry_after)
                    }
                    Some(Ok(resp)) => return Ok(resp),
                }
            };
            if attempt > retries {
                return Err(err(kind));
            }
            let delay = self.opts.backoff * 2u32.saturating_pow(attempt - 1);
            tracing::debug!(%target, attempt, ?delay, "retrying after: {kind}");
            tokio::time::sleep(retry_after.map_or(delay, |r| r.max(delay))).await;
        }
    }

    /// Turns a transport error into the error the user sees.
    pub(crate) fn fail(
        &self,
        action: &'static str,
        target: &Target,
        url: &str,
        e: reqwest::Error,
        attempts: u32,
    ) -> Error {
        let kind = self.transport_error(&target.registry, url, e, attempts, "");
        Error {
            action,
            target: Box::new(target.clone()),
            kind,
        }
    }
}

impl Transport for Client {
    /// Given credentials first (for `registry`, then for every registry),
    /// then the auth files.
    fn credentials(&self, registry: &str) -> std::result::Result<Option<Credentials>, ErrorKind> {
        if let Some(c) = self
            .opts
            .credentials
            .get(registry)
            .or(self.opts.credentials_for_all.as_ref())
        {
            return Ok(Some(c.clone()));
        }
        self.opts
            .auth_files
            .lookup(registry)
            .map_err(ErrorKind::Credentials)
    }

    /// What a transport error talking to `url` on `registry`'s behalf
    /// means for the user; `context` ("fetching a token: ") prefixes the
    /// underlying error.
    fn transport_error(
        &self,
        registry: &str,
        url: &str,
        e: reqwest::Error,
        attempts: u32,
        context: &str,
    ) -> ErrorKind {
        if let Some(refused) = refusal(&e) {
            return ErrorKind::Invalid(refused);
        }
        let (timed_out, connecting) = (e.is_timeout(), e.is_connect());
        let unreachable = connecting.then(|| unreachable(&e)).flatten();
        // The URL is named on its own, without its query.
        let message = format!("{context}{}", error_chain(&e.without_url()));
        if timed_out {
            ErrorKind::Timeout {
                attempts,
                limit: if connecting {
                    self.opts.connect_timeout
                } else {
                    self.opts.timeout
                },
            }
        } else if is_tls(&message) {
            ErrorKind::Tls {
                url: url.to_string(),
                host: registry.to_string(),
                message,
            }
        } else if let Some(why) = unreachable {
            ErrorKind::Unreachable {
                url: url.to_string(),
                why,
                message,
            }
        } else if !connecting {
            // Connected, then the connection broke: the server is
            // reachable, so "cannot reach" would send the user astray.
            ErrorKind::Dropped {
                url: url.to_string(),
                attempts,
                message,
            }
        } else {
            ErrorKind::Connect {
                url: url.to_string(),
                attempts,
                message,
            }
        }
    }
}

/// Why a connection could not be made, when retrying cannot help: the
/// host refused it (nothing listens on the port), or the name does not
/// resolve. Timeouts, unreachable networks and resets stay transient.
fn unreachable(e: &reqwest::Error) -> Option<&'static str> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Some("the connection was refused");
            }
        }
        // hyper-util's resolver error, and getaddrinfo's own words.
        let text = s.to_string();
        if text.starts_with("dns error") || text.contains("failed to lookup address") {
            return Some("its host name does not resolve");
        }
        source = s.source();
    }
    None
}

/// Registry error codes that judge a manifest: sent again, it is refused again.
pub(crate) const MANIFEST_VERDICTS: [&str; 2] = ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID"];

fn is_tls(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "invalidcontenttype",
        "unknownissuer",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// The reason kiln refused a foreign layer's address or redirect, when
/// that is what `e` is (not worth retrying).
fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<crate::foreign::Refused>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

/// "outer: inner: innermost", since reqwest's own message hides the cause.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Refuses `resp` when its `Docker-Content-Digest` names other content
/// than `actual` (`what`), the digest kiln computed or asked for. A digest
/// of another algorithm than sha256 cannot be checked and is let through.
pub(crate) fn check_stated_digest(
    resp: &Response,
    what: &str,
    actual: &Digest,
) -> Result<(), ErrorKind> {
    let Some(value) = resp.headers().get("docker-content-digest") else {
        return Ok(());
    };
    let stated = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
    let other_algorithm = stated
        .split_once(':')
        .is_some_and(|(alg, _)| alg != "sha256" && !alg.is_empty());
    if other_algorithm || stated == actual.to_string() {
        return Ok(());
    }
    Err(ErrorKind::StatedDigestMismatch {
        what: format!("{what} at {}", shown_url(resp.url())),
        stated,
        actual: *actual,
    })
}

/// When an upload's body last moved, for the stall timeout.
#[derive(Clone, Debug)]
pub(crate) struct Progress(Arc<Mutex<Instant>>);

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress(Arc::new(Mutex::new(Instant::now())))
    }

    /// Records that the transfer moved just now.
    pub(crate) fn mark(&self) {
        *self.0.lock().expect("progress poisoned") = Instant::now();
    }

    /// Returns once the transfer has not moved for `limit`.
    async fn stalled(&self, limit: Duration) {
        loop {
            let deadline = *self.0.lock().expect("progress poisoned") + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A short body (an error's explanation), or empty when it cannot be read
/// within `limit`: it only adds detail to an error already found.
pub(crate) async fn small_body(resp: Response, limit: Duration) -> Vec<u8> {
    match tokio::time::timeout(limit, resp.bytes()).await {
        Ok(Ok(bytes)) => bytes.to_vec(),
        _ => Vec::new(),
    }
}

/// An error for a response the caller did not expect; `limit` bounds
/// reading its explanation.
pub(crate) async fn status_error(resp: Response, what: &str, limit: Duration) -> ErrorKind {
    let status = resp.status();
    let request = shown_url(resp.url());
    let detail = detail_from_body(&small_body(resp, limit).await);
    match status {
        StatusCode::FORBIDDEN => ErrorKind::Forbidden { detail },
        StatusCode::NOT_FOUND => ErrorKind::NotFound {
            what: what.to_string(),
            detail,
        },
        _ => ErrorKind::Status {
            status: status.as_u16(),
            request,
            detail,
        },
    }
}

/// `url` as errors show it: scheme, host, port and path, without the query
/// or credentials, which can hold upload state or a storage backend's
/// signature that must not end up in logs.
pub(crate) fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // Fails only for URLs that cannot carry credentials anyway.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// `request` asking for the bytes from `offset` on, or all of them from 0.
pub(crate) fn with_range(request: RequestBuilder, offset: u64) -> RequestBuilder {
    if offset > 0 {
        request.header(reqwest::header::RANGE, format!("bytes={offset}-"))
    } else {
        request
    }
}

/// The method/URL pair for a path under `/v2/`.
pub(crate) fn v2(http: &reqwest::Client, method: Method, base: &str, path: &str) -> RequestBuilder {
    http.request(method, format!("{base}/v2/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hubs_api_is_at_registry_1() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        for other in [
            "index.docker.io",
            "registry-1.docker.io",
            "ghcr.io",
            "localhost:5000",
        ] {
            assert_eq!(api_host(other), other);
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
            "LOCALHOST",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example:5000",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
