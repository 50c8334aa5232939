//! Pushing: blobs first (skipped when the registry has them, mounted from
//! another repository when it can, else uploaded whole or in chunks),
//! concurrently; then platform manifests by digest; then the top manifest
//! or index by tag.

use crate::client::{
    check_stated_digest, small_body, status_error, v2, Client, Progress, Scope, MANIFEST_VERDICTS,
};
use crate::errors::{Error, ErrorKind, Result, Target};
use crate::manifest;
use crate::pull::target;
use futures_util::{StreamExt, TryStreamExt};
use kiln_oci::content::Provider;
use kiln_oci::reference::Reference;
use kiln_oci::{Descriptor, Digest, Parsed};
use reqwest::{header, Method, StatusCode};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex};

const ACTION: &str = "pushing";
const READ_CHUNK: u64 = 256 * 1024;

/// Choices for a push.
#[derive(Clone, Default)]
pub struct PushOptions {
    /// Repositories of the destination registry that may already hold the
    /// blobs; they are mounted from there instead of uploaded.
    pub mount_from: Vec<String>,
    /// Told of each blob as it goes, to show the push's progress.
    pub progress: Option<Arc<dyn PushProgress>>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("mount_from", &self.mount_from)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What a push reports about its blobs while it runs, to whoever shows
/// progress: the pull side counts bytes through the
/// [`Ingester`](kiln_oci::content::Ingester) it writes to, but a push reads
/// its blobs as files, so the count comes from here instead, and this crate
/// needs to know nothing about how progress is shown.
///
/// Blobs go concurrently, so the calls for different blobs interleave and
/// come from the client's tasks: implementations must be quick and must not
/// block.
pub trait PushProgress: Send + Sync {
    /// `blob` is about to be uploaded: the repository does not have it,
    /// and no repository it could be mounted from had it.
    fn upload_started(&self, blob: &Descriptor);

    /// `sent` bytes of `blob`, counted from its start, have been handed to
    /// the connection. A retried request sends its bytes again from where
    /// it started, so `sent` may go back.
    fn upload_progress(&self, blob: &Descriptor, sent: u64);

    /// `blob` is in the repository: uploaded whole, mounted, or already
    /// there. Not called for a blob whose push failed.
    fn blob_done(&self, blob: &Descriptor, outcome: BlobOutcome);
}

/// What a push did with each blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The digest of the manifest or index the tag now names.
    pub digest: Digest,
    /// Blobs uploaded.
    pub uploaded: Vec<Digest>,
    /// Blobs mounted from another repository.
    pub mounted: Vec<Digest>,
    /// Blobs the repository already had.
    pub existing: Vec<Digest>,
}

/// How a blob got into the repository pushed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Its bytes were uploaded.
    Uploaded,
    /// It was mounted from another repository of the registry.
    Mounted,
    /// The repository had it already.
    Existing,
}

impl Client {
    /// Pushes the image `manifest` (a manifest or an index, with its blobs
    /// in `blobs`: kiln's store, an OCI layout, any [`Provider`]) to
    /// `dest`, tagged with `dest`'s tag.
    ///
    /// Foreign layers go as ordinary layers, with their bytes (which
    /// `blobs` must have), in manifests rewritten by
    /// [`kiln_oci::make_distributable`]: the pushed digest is then not
    /// `manifest`'s. With
    /// [`ClientOptions::keep_foreign_layers`](crate::ClientOptions::keep_foreign_layers)
    /// the manifests go unchanged and foreign layers' bytes stay out.
    pub async fn push(
        &self,
        blobs: &dyn Provider,
        manifest: &Descriptor,
        dest: &Reference,
        opts: &PushOptions,
    ) -> Result<Pushed> {
        // registries.conf may block the destination or move it elsewhere;
        // mirrors are for pulls only.
        let moved = self.opts.registries.push_target(dest).map_err(|e| Error {
            action: ACTION,
            target: Box::new(target(dest)),
            kind: e.into(),
        })?;
        let dest = &moved;
        let outcomes = Mutex::new(Vec::new());
        let keep = self.opts.keep_foreign_layers;
        let rewritten = self.as_pushed(blobs, dest, manifest)?;
        let new: HashMap<Digest, Vec<u8>> = rewritten
            .documents
            .into_iter()
            .map(|(d, bytes)| (d.digest, bytes))
            .collect();
        let manifest = &rewritten.root;
        let read = |desc: &Descriptor| match new.get(&desc.digest) {
            Some(bytes) => Ok(bytes.clone()),
            None => self.read_local(blobs, dest, desc),
        };
        let bytes = read(manifest)?;
        match parse(dest, manifest, &bytes)? {
            Parsed::Manifest(_, image) => {
                self.push_blobs(blobs, dest, image.config, image.layers, opts, &outcomes)
                    .await?;
            }
            Parsed::Index(_, index) => {
                for child in index.manifests {
                    if !blobs.has_blob(&child.digest) && !new.contains_key(&child.digest) {
                        let platform = child
                            .platform()
                            .map_or_else(String::new, |p| format!(" ({p})"));
                        return Err(error(
                            dest,
                            ErrorKind::Invalid(format!(
                                "the image is an index, and its manifest {}{platform} is not here: \
                                 only some of its platforms were pulled; pull it again with \
                                 `kiln pull --all-platforms` to push every platform",
                                child.digest
                            )),
                        ));
                    }
                    let child_bytes = read(&child)?;
                    let Parsed::Manifest(_, image) = parse(dest, &child, &child_bytes)? else {
                        return Err(error(
                            dest,
                            ErrorKind::NotSupported(
                                "the index names another index; kiln does not push nested indexes"
                                    .into(),
                            ),
                        ));
                    };
                    self.push_blobs(blobs, dest, image.config, image.layers, opts, &outcomes)
                        .await?;
                    let foreign = keep && image_has_urls(&child_bytes);
                    self.put_manifest(
                        dest,
                        &child,
                        child_bytes,
                        &child.digest.to_string(),
                        foreign,
                    )
                    .await?;
                }
            }
        }
        let tag = match (&dest.tag, &dest.digest) {
            (Some(tag), _) => tag.clone(),
            (None, _) => manifest.digest.to_string(),
        };
        let foreign = keep && image_has_urls(&bytes);
        self.put_manifest(dest, manifest, bytes, &tag, foreign)
            .await?;
        let mut pushed = Pushed {
            digest: manifest.digest,
            uploaded: Vec::new(),
            mounted: Vec::new(),
            existing: Vec::new(),
        };
        for (digest, outcome) in outcomes.into_inner().expect("outcome list poisoned") {
            let list = match outcome {
                BlobOutcome::Uploaded => &mut pushed.uploaded,
                BlobOutcome::Mounted => &mut pushed.mounted,
                BlobOutcome::Existing => &mut pushed.existing,
            };
            if !list.contains(&digest) {
                list.push(digest);
            }
        }
        Ok(pushed)
    }

    /// The image `manifest` as it is pushed: unchanged when foreign layers
    /// are kept, else rewritten by [`kiln_oci::make_distributable`] (the
    /// new documents exist only in memory until pushed).
    fn as_pushed(
        &self,
        blobs: &dyn Provider,
        dest: &Reference,
        manifest: &Descriptor,
    ) -> Result<kiln_oci::Distributable> {
        if self.opts.keep_foreign_layers {
            return Ok(kiln_oci::Distributable {
                root: manifest.clone(),
                documents: Vec::new(),
            });
        }
        let mut read = |d: &Descriptor| -> Result<Option<Vec<u8>>, ErrorKind> {
            // An index entry never pulled is pushed as it is, or refused
            // below with the reason.
            if !blobs.has_blob(&d.digest) && d.digest != manifest.digest {
                return Ok(None);
            }
            let bytes = self.read_local(blobs, dest, d).map_err(|e| e.kind)?;
            parse(dest, d, &bytes).map_err(|e| e.kind)?;
            Ok(Some(bytes))
        };
        kiln_oci::make_distributable(manifest, &mut read).map_err(|kind| error(dest, kind))
    }

    fn read_local(
        &self,
        blobs: &dyn Provider,
        dest: &Reference,
        desc: &Descriptor,
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        blobs
            .open_blob(&desc.digest)
            .map_err(|e| error(dest, e.into()))?
            .read_to_end(&mut bytes)
            .map_err(|source| {
                error(
                    dest,
                    ErrorKind::Io {
                        action: "reading",
                        path: format!("blob {}", desc.digest),
                        source,
                    },
                )
            })?;
        Ok(bytes)
    }

    async fn push_blobs(
        &self,
        blobs: &dyn Provider,
        dest: &Reference,
        config: Descriptor,
        layers: Vec<Descriptor>,
        opts: &PushOptions,
        outcomes: &Mutex<Vec<(Digest, BlobOutcome)>>,
    ) -> Result<()> {
        // Only kept foreign layers are left with urls here (the rest were
        // made distributable); their bytes stay where the urls point. A
        // blob listed twice (two steps that made the same change) goes once.
        let mut seen = std::collections::HashSet::new();
        let todo = std::iter::once(config)
            .chain(layers)
            .filter(|d| !d.is_foreign())
            .filter(move |d| seen.insert(d.digest));
        futures_util::stream::iter(todo)
            .map(|d| async move {
                let outcome = self.push_blob(blobs, dest, &d, opts).await?;
                if let Some(progress) = &opts.progress {
                    progress.blob_done(&d, outcome);
                }
                outcomes
                    .lock()
                    .expect("outcome list poisoned")
                    .push((d.digest, outcome));
                Ok::<_, Error>(())
            })
            .buffer_unordered(self.opts.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn push_blob(
        &self,
        blobs: &dyn Provider,
        dest: &Reference,
        desc: &Descriptor,
        opts: &PushOptions,
    ) -> Result<BlobOutcome> {
        let repo = &dest.repository;
        let mut t = target(dest);
        t.reference = desc.digest.to_string();
        let err = |kind| Error {
            action: ACTION,
            target: Box::new(t.clone()),
            kind,
        };
        let what = format!("blob {}", desc.digest);
        let blob_path = format!("{repo}/blobs/{}", desc.digest);
        let resp = self
            .send(&t, ACTION, &Scope::push(repo), |http, base| {
                v2(http, Method::HEAD, base, &blob_path)
            })
            .await?;
        if resp.status() == StatusCode::OK {
            check_stated_digest(&resp, &what, &desc.digest).map_err(err)?;
            return Ok(BlobOutcome::Existing);
        }
        let mut location = None;
        for from in opts.mount_from.iter().filter(|f| *f != repo) {
            let mut scope = Scope::push(repo);
            scope.0.push(format!("repository:{from}:pull"));
            let resp = self
                .send(&t, ACTION, &scope, |http, base| {
                    v2(http, Method::POST, base, &format!("{repo}/blobs/uploads/"))
                        .query(&[
                            ("mount", desc.digest.to_string().as_str()),
                            ("from", from.as_str()),
                        ])
                        .header(header::CONTENT_LENGTH, "0")
                })
                .await?;
            match resp.status() {
                StatusCode::CREATED => {
                    check_stated_digest(&resp, &what, &desc.digest).map_err(err)?;
                    return Ok(BlobOutcome::Mounted);
                }
                StatusCode::ACCEPTED => {
                    location = Some(self.location(&t, &resp)?);
                    break;
                }
                _ => {}
            }
        }
        // A cut upload leaves the registry holding part of it, so the
        // session cannot be resumed from where kiln thought it was
        // (distribution answers BLOB_UPLOAD_INVALID): each attempt starts
        // a new one. The requests of an attempt are not retried themselves.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let location = match location.take() {
                Some(l) => l,
                None => self.start_upload(&t, repo).await?,
            };
            match self.upload(blobs, &t, repo, desc, opts, location).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) if e.kind.is_transient() && attempt <= self.opts.retries => {
                    let delay = self.opts.backoff * 2u32.saturating_pow(attempt - 1);
                    tracing::debug!(target = %t, attempt, ?delay, "uploading again after: {e}");
                    tokio::time::sleep(delay).await;
                }
                Err(mut e) => {
                    e.kind = e.kind.after_attempts(attempt);
                    return Err(e);
                }
            }
        }
    }

    /// Starts an upload session in `repo` for the blob `t` names; its
    /// absolute URL.
    async fn start_upload(&self, t: &Target, repo: &str) -> Result<String> {
        let resp = self
            .send(t, ACTION, &Scope::push(repo), |http, base| {
                v2(http, Method::POST, base, &format!("{repo}/blobs/uploads/"))
                    .header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Error {
                action: ACTION,
                target: Box::new(t.clone()),
                kind: status_error(resp, "the upload endpoint", self.opts.timeout).await,
            });
        }
        self.location(t, &resp)
    }

    /// Sends `desc`'s bytes to the upload session at `location`: in
    /// chunks when `chunk_size` asks for them, the rest in the closing PUT.
    async fn upload(
        &self,
        blobs: &dyn Provider,
        t: &Target,
        repo: &str,
        desc: &Descriptor,
        opts: &PushOptions,
        location: String,
    ) -> Result<BlobOutcome> {
        let err = |kind| Error {
            action: ACTION,
            target: Box::new(t.clone()),
            kind,
        };
        let what = format!("blob {}", desc.digest);
        let file = Arc::new(blobs.open_blob(&desc.digest).map_err(|e| err(e.into()))?);
        let sent = opts.progress.clone().map(|progress| Sent {
            progress,
            blob: desc.clone(),
        });
        if let Some(sent) = &sent {
            sent.progress.upload_started(desc);
        }
        let size = desc.size;
        let mut location = location;
        let mut offset = 0;
        if let Some(chunk) = self.opts.chunk_size.filter(|c| *c > 0 && size > *c) {
            while offset < size {
                let len = chunk.min(size - offset);
                let (url, file) = (location.clone(), file.clone());
                let progress = Progress::new();
                let resp = self
                    .send_upload(t, ACTION, &Scope::push(repo), &progress, |http, _| {
                        http.patch(url.as_str())
                            .header(header::CONTENT_TYPE, "application/octet-stream")
                            .header(header::CONTENT_LENGTH, len.to_string())
                            .header(
                                header::CONTENT_RANGE,
                                format!("{offset}-{}", offset + len - 1),
                            )
                            .body(file_body(
                                file.clone(),
                                offset,
                                len,
                                progress.clone(),
                                sent.clone(),
                            ))
                    })
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(err(status_error(resp, &what, self.opts.timeout).await));
                }
                location = self.location(t, &resp)?;
                offset += len;
            }
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", desc.digest);
        let remaining = size - offset;
        let progress = Progress::new();
        let resp = self
            .send_upload(t, ACTION, &Scope::push(repo), &progress, |http, _| {
                http.put(url.as_str())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, remaining.to_string())
                    .body(file_body(
                        file.clone(),
                        offset,
                        remaining,
                        progress.clone(),
                        sent.clone(),
                    ))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => {
                check_stated_digest(&resp, &what, &desc.digest).map_err(err)?;
                Ok(BlobOutcome::Uploaded)
            }
            StatusCode::BAD_REQUEST => {
                let detail =
                    crate::errors::detail_from_body(&small_body(resp, self.opts.timeout).await);
                Err(err(ErrorKind::Invalid(format!(
                    "the registry refused {what}{detail}; the local copy may be corrupt, run `kiln fsck`"
                ))))
            }
            _ => Err(err(status_error(resp, &what, self.opts.timeout).await)),
        }
    }

    /// The absolute upload URL from a response's `Location`.
    fn location(&self, t: &Target, resp: &reqwest::Response) -> Result<String> {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error {
                action: ACTION,
                target: Box::new(t.clone()),
                kind: ErrorKind::Invalid(
                    "the registry started an upload but sent no Location".into(),
                ),
            })?;
        resp.url()
            .join(loc)
            .map(|u| u.to_string())
            .map_err(|e| Error {
                action: ACTION,
                target: Box::new(t.clone()),
                kind: ErrorKind::Invalid(format!(
                    "the registry sent a bad upload Location {loc:?}: {e}"
                )),
            })
    }

    /// Puts one manifest or index; `foreign`: it lists layers with `urls`,
    /// so a registry refusing it most likely validates those.
    async fn put_manifest(
        &self,
        dest: &Reference,
        desc: &Descriptor,
        bytes: Vec<u8>,
        reference: &str,
        foreign: bool,
    ) -> Result<()> {
        let mut t = target(dest);
        t.reference = reference.to_string();
        let path = format!("{}/manifests/{reference}", dest.repository);
        let refused =
            |detail: &str| foreign && MANIFEST_VERDICTS.iter().any(|c| detail.contains(c));
        let sent = self
            .send(&t, ACTION, &Scope::push(&dest.repository), |http, base| {
                v2(http, Method::PUT, base, &path)
                    .header(header::CONTENT_TYPE, desc.media_type.as_str())
                    .body(bytes.clone())
            })
            .await;
        // distribution answers 400, or 500 for a URL it refuses.
        let kind = match sent {
            Err(Error {
                kind: ErrorKind::Server { detail, .. },
                ..
            }) if refused(&detail) => ErrorKind::ForeignUrlsRefused { detail },
            Err(e) => return Err(e),
            Ok(resp) if resp.status() == StatusCode::BAD_REQUEST => {
                let body = small_body(resp, self.opts.timeout).await;
                let detail = crate::errors::detail_from_body(&body);
                if refused(&detail) {
                    ErrorKind::ForeignUrlsRefused { detail }
                } else {
                    ErrorKind::Status {
                        status: 400,
                        request: path.clone(),
                        detail,
                    }
                }
            }
            Ok(resp) => {
                return self.manifest_answer(resp, desc, t).await;
            }
        };
        Err(Error {
            action: ACTION,
            target: Box::new(t),
            kind,
        })
    }

    /// Judges the registry's answer to a manifest upload.
    async fn manifest_answer(
        &self,
        resp: reqwest::Response,
        desc: &Descriptor,
        t: Target,
    ) -> Result<()> {
        let kind = if resp.status() != StatusCode::CREATED {
            status_error(resp, "manifest", self.opts.timeout).await
        } else {
            match check_stated_digest(&resp, "the manifest", &desc.digest) {
                Ok(()) => return Ok(()),
                Err(kind) => kind,
            }
        };
        Err(Error {
            action: ACTION,
            target: Box::new(t),
            kind,
        })
    }
}

fn error(dest: &Reference, kind: ErrorKind) -> Error {
    Error {
        action: ACTION,
        target: Box::new(target(dest)),
        kind,
    }
}

/// True when `bytes` is an image manifest with a layer that has `urls`.
fn image_has_urls(bytes: &[u8]) -> bool {
    matches!(
        kiln_oci::parse_manifest(bytes, None),
        Ok(Parsed::Manifest(_, m)) if m.layers.iter().any(Descriptor::is_foreign)
    )
}

fn parse(dest: &Reference, desc: &Descriptor, bytes: &[u8]) -> Result<Parsed> {
    if Digest::of(bytes) != desc.digest {
        return Err(error(
            dest,
            ErrorKind::DigestMismatch {
                what: format!("the local manifest {}", desc.digest),
                expected: desc.digest,
                actual: Digest::of(bytes),
            },
        ));
    }
    manifest::parse(&desc.media_type, bytes).map_err(|e| error(dest, ErrorKind::Invalid(e)))
}

/// Where the bytes of one blob's upload are reported, when someone asked.
#[derive(Clone)]
struct Sent {
    progress: Arc<dyn PushProgress>,
    blob: Descriptor,
}

/// `len` bytes of `file` from `offset`, read as the request body is sent
/// (positional reads: a retry reads the same bytes again); each piece
/// taken marks `progress` (the stall timer) and tells `sent` how far into
/// the blob the upload is.
fn file_body(
    file: Arc<File>,
    offset: u64,
    len: u64,
    progress: Progress,
    sent: Option<Sent>,
) -> reqwest::Body {
    let stream = futures_util::stream::unfold((file, offset, len), move |(file, offset, left)| {
        let progress = progress.clone();
        let sent = sent.clone();
        async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0; READ_CHUNK.min(left) as usize];
            match crate::sys::read_exact_at(&file, &mut buf, offset) {
                Ok(()) => {
                    progress.mark();
                    let n = buf.len() as u64;
                    if let Some(sent) = &sent {
                        sent.progress.upload_progress(&sent.blob, offset + n);
                    }
                    Some((Ok(buf), (file, offset + n, left - n)))
                }
                Err(e) => Some((Err(e), (file, offset, 0))),
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}
