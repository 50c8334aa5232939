//! Pulling: manifest or index by tag or digest, platform selection, and
//! blobs streamed into the store concurrently, verified, resumed with
//! `Range` after a dropped connection, and committed atomically.

use crate::client::{check_stated_digest, shown_url, status_error, v2, with_range, Client, Scope};
use crate::errors::{Error, ErrorKind, Result, Target};
use crate::manifest;
use futures_util::{StreamExt, TryStreamExt};
use kiln_oci::content::{ContentError, Ingester};
use kiln_oci::reference::Reference;
use kiln_oci::{select_platform_strict, Descriptor, Digest, Parsed, Platform};
use reqwest::{header, Method, StatusCode};
use std::io::Write;

/// The most kiln reads of a manifest; real ones are a few KiB.
const MAX_MANIFEST: usize = 8 << 20;
pub(crate) const ACTION: &str = "pulling";

/// What a pull did.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The image's manifest (the selected platform's, for an index); the
    /// reference's tag now names it in the store.
    pub manifest: Descriptor,
    /// The index the manifest was chosen from, if the reference named one.
    pub index: Option<Descriptor>,
    /// Blobs downloaded.
    pub fetched: Vec<Digest>,
    /// Blobs already in the store, not downloaded again.
    pub present: Vec<Digest>,
    /// Foreign layers (with `urls`, e.g. Windows base layers). Fetched with
    /// the rest (and listed in `fetched`), unless
    /// [`ClientOptions::keep_foreign_layers`](crate::ClientOptions::keep_foreign_layers)
    /// leaves them for [`Client::fetch_blob`] to fetch when needed.
    pub foreign: Vec<Descriptor>,
}

/// Splits [`Client::download_all`]'s results into fetched and present digests.
pub(crate) fn split_fetched(results: Vec<(Digest, bool)>) -> (Vec<Digest>, Vec<Digest>) {
    let (fetched, present): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, f)| *f);
    (
        fetched.into_iter().map(|(d, _)| d).collect(),
        present.into_iter().map(|(d, _)| d).collect(),
    )
}

pub(crate) fn target(reference: &Reference) -> Target {
    Target {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        reference: match (&reference.digest, &reference.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => String::new(),
        },
    }
}

impl Client {
    /// Pulls `reference` into `store` (kiln's store, or any other
    /// [`Ingester`]) and names it there. From an index, the manifest for
    /// `platform` (default: this host's) is pulled.
    ///
    /// `registries.conf` applies ([`crate::Registries`]): a blocked
    /// reference fails, mirrors are tried first, then the location the
    /// reference is rewritten to; the image is named `reference` whichever
    /// served it, and the last source's error is returned when none did.
    pub async fn pull(
        &self,
        store: &dyn Ingester,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<Pulled> {
        let mut last = None;
        for source in &self.pull_sources(reference)? {
            match self.pull_from(store, reference, source, platform).await {
                Ok(pulled) => return Ok(pulled),
                Err(e) => {
                    tracing::debug!("pulling {reference} from {source}: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("registries.conf gives at least one source"))
    }

    /// Where `reference` is pulled from, as `registries.conf` says, in
    /// order; an error when it blocks the reference.
    pub(crate) fn pull_sources(&self, reference: &Reference) -> Result<Vec<Reference>> {
        self.opts
            .registries
            .pull_sources(reference)
            .map_err(|e| Error {
                action: ACTION,
                target: Box::new(target(reference)),
                kind: e.into(),
            })
    }

    /// [`Client::pull`] from `source`, naming the image `reference`.
    async fn pull_from(
        &self,
        store: &dyn Ingester,
        name: &Reference,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<Pulled> {
        let target = target(reference);
        let err = |kind| Error {
            action: ACTION,
            target: Box::new(target.clone()),
            kind,
        };
        let (mut desc, mut bytes) = self.fetch_manifest(reference).await?;
        let mut index = None;
        let mut parsed =
            manifest::parse(&desc.media_type, &bytes).map_err(|e| err(ErrorKind::Invalid(e)))?;
        if let Parsed::Index(_, index_doc) = &parsed {
            let entries = &index_doc.manifests;
            let wanted = platform.cloned().unwrap_or_else(Platform::host);
            let entry = select_platform_strict(&wanted, entries, Descriptor::platform)
                .map_err(|e| err(ErrorKind::Invalid(e.to_string())))?
                .ok_or_else(|| {
                    let available: Vec<String> = entries
                        .iter()
                        .filter_map(|e| e.platform().map(|p| p.to_string()))
                        .collect();
                    err(ErrorKind::NoMatchingPlatform {
                        wanted: wanted.to_string(),
                        available: available.join(", "),
                    })
                })?;
            let (child, child_bytes) = self.fetch_index_entry(reference, entry).await?;
            index = Some(desc);
            desc = Descriptor::new(&child.media_type, child.digest, child.size);
            bytes = child_bytes;
            parsed = manifest::parse(&desc.media_type, &bytes)
                .map_err(|e| err(ErrorKind::Invalid(e)))?;
        }
        let Parsed::Manifest(_, image) = parsed else {
            return Err(err(ErrorKind::Invalid(
                "the index names another index as a platform's image; kiln does not follow nested indexes".into(),
            )));
        };
        let (foreign, blobs): (Vec<Descriptor>, Vec<Descriptor>) = std::iter::once(image.config)
            .chain(image.layers)
            .partition(|d| d.is_foreign());
        let mut results = self.download_all(store, reference, blobs).await?;
        results.extend(self.fetch_all_foreign(store, reference, &foreign).await?);
        store
            .put_bytes(&bytes, &desc.digest)
            .map_err(|e| err(e.into()))?;
        store
            .put_image(name.tag.is_some().then_some(name), &desc)
            .map_err(|e| err(e.into()))?;
        let (fetched, present) = split_fetched(results);
        Ok(Pulled {
            manifest: desc,
            index,
            fetched,
            present,
            foreign,
        })
    }

    /// Fetches the foreign layers `foreign` of `reference` concurrently,
    /// unless they are kept as they are; returns each digest with whether
    /// it was fetched.
    pub(crate) async fn fetch_all_foreign(
        &self,
        store: &dyn Ingester,
        reference: &Reference,
        foreign: &[Descriptor],
    ) -> Result<Vec<(Digest, bool)>> {
        if self.opts.keep_foreign_layers {
            return Ok(Vec::new());
        }
        futures_util::stream::iter(foreign)
            .map(|d| async move {
                let fetched = self.fetch_foreign(store, Some(reference), d).await?;
                Ok::<_, Error>((d.digest, fetched))
            })
            .buffer_unordered(self.opts.concurrency.max(1))
            .try_collect()
            .await
    }

    /// Downloads `blobs` of `reference`'s repository concurrently; returns
    /// each digest with whether it was fetched (false: already stored). A
    /// blob listed twice (two steps that made the same change) is fetched
    /// once.
    pub(crate) async fn download_all(
        &self,
        store: &dyn Ingester,
        reference: &Reference,
        blobs: Vec<Descriptor>,
    ) -> Result<Vec<(Digest, bool)>> {
        let mut seen = std::collections::HashSet::new();
        let blobs: Vec<Descriptor> = blobs
            .into_iter()
            .filter(|d| seen.insert(d.digest))
            .collect();
        futures_util::stream::iter(blobs)
            .map(|d| async move {
                let fetched = self.download(store, reference, &d).await?;
                Ok::<_, Error>((d.digest, fetched))
            })
            .buffer_unordered(self.opts.concurrency.max(1))
            .try_collect()
            .await
    }

    /// Fetches the manifest or index `reference` names, checking it against
    /// the reference's digest when it has one. Returns its descriptor and bytes.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<(Descriptor, Vec<u8>)> {
        self.fetch_manifest_sized(reference, None).await
    }

    /// Fetches the manifest `entry` of an index names from `reference`'s
    /// repository, checked against the entry's digest and size.
    pub(crate) async fn fetch_index_entry(
        &self,
        reference: &Reference,
        entry: &Descriptor,
    ) -> Result<(Descriptor, Vec<u8>)> {
        let mut by_digest = reference.clone();
        by_digest.digest = Some(entry.digest);
        self.fetch_manifest_sized(&by_digest, Some(entry.size))
            .await
    }

    /// [`Client::fetch_manifest`], refusing a body of another `size` than
    /// given without reading more than one byte past it. A body cut or
    /// stalled part way is fetched again, as often as a failed request.
    async fn fetch_manifest_sized(
        &self,
        reference: &Reference,
        size: Option<u64>,
    ) -> Result<(Descriptor, Vec<u8>)> {
        let mut attempt = 1;
        loop {
            match self.fetch_manifest_once(reference, size, attempt).await {
                Err(e)
                    if matches!(
                        e.kind,
                        ErrorKind::Interrupted { .. } | ErrorKind::Stalled { .. }
                    ) && attempt <= self.opts.retries =>
                {
                    tracing::debug!(target = %e.target, "fetching the manifest again after: {e}");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`Client::fetch_manifest_sized`], the `attempt`th.
    async fn fetch_manifest_once(
        &self,
        reference: &Reference,
        size: Option<u64>,
        attempt: u32,
    ) -> Result<(Descriptor, Vec<u8>)> {
        let target = target(reference);
        let err = |kind| Error {
            action: ACTION,
            target: Box::new(target.clone()),
            kind,
        };
        let path = format!("{}/manifests/{}", reference.repository, target.reference);
        let mut resp = self
            .send(
                &target,
                ACTION,
                &Scope::pull(&reference.repository),
                |http, base| {
                    v2(http, Method::GET, base, &path).header(header::ACCEPT, manifest::ACCEPT)
                },
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(err(status_error(resp, "manifest", self.opts.timeout).await));
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let url = shown_url(resp.url());
        let expected = resp.content_length();
        let wrong_size = |actual: String| {
            err(ErrorKind::SizeMismatch {
                what: "the manifest".into(),
                declared_by: "the index",
                url: url.clone(),
                expected: size.unwrap_or_default(),
                actual,
            })
        };
        if let (Some(size), Some(n)) = (size, expected) {
            if n != size {
                return Err(wrong_size(n.to_string()));
            }
        }
        let mut bytes = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(self.opts.timeout, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break,
                Ok(Err(e)) if !e.is_timeout() => {
                    return Err(err(ErrorKind::Interrupted {
                        url,
                        attempts: attempt,
                        received: bytes.len() as u64,
                        expected,
                        message: crate::client::error_chain(&e.without_url()),
                    }))
                }
                Ok(Err(_)) | Err(_) => {
                    return Err(err(ErrorKind::Stalled {
                        url,
                        attempts: attempt,
                        received: bytes.len() as u64,
                        limit: self.opts.timeout,
                    }))
                }
            };
            bytes.extend_from_slice(&chunk);
            if let Some(size) = size.filter(|s| bytes.len() as u64 > *s) {
                return Err(wrong_size(format!("more than {size}")));
            }
            if bytes.len() > MAX_MANIFEST {
                return Err(err(ErrorKind::Invalid(format!(
                    "the manifest at {url} is larger than {} MiB; that is not a manifest",
                    MAX_MANIFEST >> 20
                ))));
            }
        }
        if size.is_some_and(|s| bytes.len() as u64 != s) {
            return Err(wrong_size(bytes.len().to_string()));
        }
        let digest = Digest::of(&bytes);
        if let Some(expected) = reference.digest {
            if expected != digest {
                return Err(err(ErrorKind::DigestMismatch {
                    what: format!("the manifest at {url}"),
                    expected,
                    actual: digest,
                }));
            }
        }
        check_stated_digest(&resp, "the manifest", &digest).map_err(err)?;
        let mt = manifest::media_type_of(content_type.as_deref(), &bytes);
        Ok((Descriptor::new(&mt, digest, bytes.len() as u64), bytes))
    }

    /// Makes sure blob `desc` of `reference`'s repository is in the store:
    /// from the registry, or for a foreign layer from its `urls` when the
    /// registry does not have it. Returns false if it was already there.
    pub async fn fetch_blob(
        &self,
        store: &dyn Ingester,
        reference: &Reference,
        desc: &Descriptor,
    ) -> Result<bool> {
        if desc.is_foreign() {
            return self.fetch_foreign(store, Some(reference), desc).await;
        }
        self.download(store, reference, desc).await
    }

    /// Makes sure the foreign layer `desc` is in the store: from the
    /// repository of `image` (the image it belongs to) when given (moby
    /// and ggcr try there first, and a registry that allows foreign layers
    /// may still hold the bytes), then from each of its `urls` in turn,
    /// each checked as [`crate::foreign`] says; size and digest are
    /// verified wherever the bytes come from. When nothing works, the
    /// error names the layer and every place tried with what went wrong
    /// there. Returns false if the layer was already there.
    pub async fn fetch_foreign(
        &self,
        store: &dyn Ingester,
        image: Option<&Reference>,
        desc: &Descriptor,
    ) -> Result<bool> {
        if store.has_blob(&desc.digest) {
            return Ok(false);
        }
        // Errors name the image's repository, or without one the host of
        // the layer's first URL.
        let label = match image {
            Some(reference) => {
                let mut t = target(reference);
                t.reference = desc.digest.to_string();
                t
            }
            None => Target {
                registry: desc
                    .urls()
                    .first()
                    .and_then(|u| reqwest::Url::parse(u).ok())
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_default(),
                repository: String::new(),
                reference: String::new(),
            },
        };
        let mut tried = Vec::new();
        if let Some(reference) = image {
            match self.download(store, reference, desc).await {
                Ok(fetched) => return Ok(fetched),
                Err(e) if matches!(e.kind, ErrorKind::NotFound { .. }) => {
                    tried.push(format!(
                        "the registry {} does not have it",
                        reference.registry
                    ));
                }
                Err(e) => tried.push(format!("the registry {}: {}", reference.registry, e.kind)),
            }
        }
        for url in desc.urls() {
            let source = BlobSource::Url {
                url,
                label: label.clone(),
            };
            match self.download_from(store, desc, source).await {
                Ok(fetched) => return Ok(fetched),
                Err(e) => tried.push(url_failure(url, e.kind)),
            }
        }
        if desc.urls().is_empty() {
            tried.push("the layer has no URLs".into());
        }
        Err(Error {
            action: ACTION,
            target: Box::new(label),
            kind: ErrorKind::ForeignLayer {
                digest: desc.digest,
                tried,
                keep_possible: !self.opts.keep_foreign_layers,
            },
        })
    }

    pub(crate) async fn download(
        &self,
        store: &dyn Ingester,
        reference: &Reference,
        desc: &Descriptor,
    ) -> Result<bool> {
        self.download_from(store, desc, BlobSource::Registry(reference))
            .await
    }

    /// Streams one blob into the store from the registry (or `url`),
    /// resuming with `Range` when the connection drops part way.
    async fn download_from(
        &self,
        store: &dyn Ingester,
        desc: &Descriptor,
        source: BlobSource<'_>,
    ) -> Result<bool> {
        if store.has_blob(&desc.digest) {
            return Ok(false);
        }
        let target = match &source {
            BlobSource::Registry(reference) => {
                let mut t = target(reference);
                t.reference = desc.digest.to_string();
                t
            }
            BlobSource::Url { label, .. } => label.clone(),
        };
        let err = |kind| Error {
            action: ACTION,
            target: Box::new(target.clone()),
            kind,
        };
        let what = format!("blob {}", desc.digest);
        let mut writer = store.ingest().map_err(|e| err(e.into()))?;
        let mut drops = 0;
        loop {
            let offset = writer.written();
            let mut resp = match &source {
                BlobSource::Url { url, .. } => self.send_url(url, &target, ACTION, offset).await?,
                BlobSource::Registry(reference) => {
                    let path = format!("{}/blobs/{}", reference.repository, desc.digest);
                    self.send(
                        &target,
                        ACTION,
                        &Scope::pull(&reference.repository),
                        |http, base| with_range(v2(http, Method::GET, base, &path), offset),
                    )
                    .await?
                }
            };
            let full_url = shown_url(resp.url());
            let wrong_size = |actual: String| {
                err(ErrorKind::SizeMismatch {
                    what: what.clone(),
                    declared_by: "the manifest",
                    url: full_url.clone(),
                    expected: desc.size,
                    actual,
                })
            };
            // The size of the whole blob, as far as the response says.
            let announced = match resp.status() {
                StatusCode::PARTIAL_CONTENT if offset > 0 => {
                    range_total(&resp).or_else(|| resp.content_length().map(|n| offset + n))
                }
                StatusCode::OK if offset == 0 => resp.content_length(),
                // The server ignored the Range header: start again.
                StatusCode::OK => {
                    writer = store.ingest().map_err(|e| err(e.into()))?;
                    resp.content_length()
                }
                // Only bytes before `offset`, short of the descriptor's
                // size, were asked about: the server has no more than that.
                StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                    let actual = range_total(&resp)
                        .map_or_else(|| format!("at most {offset}"), |n| n.to_string());
                    return Err(wrong_size(actual));
                }
                _ => return Err(err(status_error(resp, &what, self.opts.timeout).await)),
            };
            check_stated_digest(&resp, &what, &desc.digest).map_err(err)?;
            if let Some(n) = announced.filter(|n| *n != desc.size) {
                return Err(wrong_size(n.to_string()));
            }
            let cut = loop {
                let chunk =
                    match tokio::time::timeout(self.opts.timeout, resp.chunk()).await {
                        Ok(Ok(Some(chunk))) => chunk,
                        Ok(Ok(None)) if writer.written() == desc.size => break None,
                        Ok(Ok(None)) => break Some(Cut::Broken(
                            "the registry closed the connection early, without saying how long \
                             the response was"
                                .into(),
                        )),
                        Ok(Err(e)) if !e.is_timeout() => {
                            break Some(Cut::Broken(crate::client::error_chain(&e.without_url())))
                        }
                        Ok(Err(_)) | Err(_) => break Some(Cut::Stalled),
                    };
                // Stops at the first byte past the size: an over-long body
                // is never read to its end.
                if writer.written() + chunk.len() as u64 > desc.size {
                    return Err(wrong_size(format!("more than {}", desc.size)));
                }
                writer
                    .write_all(&chunk)
                    .map_err(|e| err(ContentError::Other(format!("writing {what}: {e}")).into()))?;
            };
            let Some(cut) = cut else {
                break;
            };
            drops += 1;
            if drops > self.opts.retries {
                return Err(err(match cut {
                    Cut::Stalled => ErrorKind::Stalled {
                        url: full_url,
                        attempts: drops,
                        received: writer.written(),
                        limit: self.opts.timeout,
                    },
                    Cut::Broken(message) => ErrorKind::Interrupted {
                        url: full_url,
                        attempts: drops,
                        received: writer.written(),
                        expected: Some(desc.size),
                        message,
                    },
                }));
            }
            tracing::debug!(%target, offset = writer.written(), "resuming after: {cut:?}");
        }
        writer.commit(&desc.digest).map_err(|e| match e {
            ContentError::DigestMismatch { expected, actual } => err(ErrorKind::DigestMismatch {
                what: what.clone(),
                expected,
                actual,
            }),
            other => err(other.into()),
        })?;
        Ok(true)
    }
}

/// What went wrong fetching a foreign layer from `url`, in the words of a
/// URL rather than a registry.
fn url_failure(url: &str, kind: ErrorKind) -> String {
    match kind {
        ErrorKind::NotFound { detail, .. } => format!("{url}: not found (404){detail}"),
        ErrorKind::Connect { message, .. } | ErrorKind::Unreachable { message, .. } => {
            format!("{url}: cannot connect ({message})")
        }
        ErrorKind::Invalid(why) if why.starts_with(url) => why,
        other => format!("{url}: {other}"),
    }
}

/// Where [`Client::download_from`] fetches a blob.
enum BlobSource<'a> {
    /// The registry, from the reference's repository.
    Registry(&'a Reference),
    /// A foreign layer's URL; `label` names what it is for in errors.
    Url { url: &'a str, label: Target },
}

/// Why a body stopped before its end.
#[derive(Debug)]
enum Cut {
    /// Nothing arrived for the stall timeout.
    Stalled,
    /// The connection broke or ended early; the error.
    Broken(String),
}

/// The total size from a `Content-Range: bytes a-b/TOTAL` or `bytes */TOTAL`.
fn range_total(resp: &reqwest::Response) -> Option<u64> {
    let value = resp.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    value
        .trim()
        .strip_prefix("bytes ")?
        .rsplit_once('/')?
        .1
        .parse()
        .ok()
}
