//! The cache key of what a `COPY --from=<stage or image>` copies: the
//! entries its sources name in that file system, by content, as BuildKit's
//! content checksums key it (cache/contenthash: type, permission bits,
//! owner, size, link target, device numbers, xattrs and the bytes; not
//! mtimes). A builder stage that runs again but makes the same files then
//! misses nothing after it; keying by the stage's layer ids missed every
//! step from the COPY on.

use super::{BuildCache, SourceMask};
use crate::copy::paths::{clean_clamped, go_match, split_wildcards};
use crate::imagefs::{FsEntry, FsKind, ImageFs};
use kiln_oci::{Digest, DigestWriter, LayerFormat};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

/// Content digests by [`FsEntry::content_key`].
type Contents = HashMap<(usize, u64), Digest>;

impl BuildCache {
    /// The digest of what `sources` (COPY's source paths, in the image's
    /// own terms) name in `fs`, without the parts `mask` says the step
    /// overrides; `None` when that is not known without copying (a path
    /// through a symlink, a pattern whose matches may follow one, a
    /// Windows image), for the caller to key by layer ids instead. File
    /// contents are hashed from the layer blobs once per blob and
    /// remembered in the index.
    pub(crate) fn image_sources_digest(
        &self,
        fs: &ImageFs,
        sources: &[String],
        mask: SourceMask,
    ) -> Result<Option<Digest>, String> {
        if fs.format() != LayerFormat::Linux {
            return Ok(None);
        }
        let mut listed: Vec<(usize, String, &FsEntry)> = Vec::new();
        let mut missing: Vec<usize> = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            let cleaned = clean_clamped(&src.replace("/./", "/"));
            let (literal, pattern) = split_wildcards(&cleaned);
            let root = format!("/{literal}");
            // A link on the way (or at the end) is followed when COPY
            // resolves the source: what it leads to is not keyed here.
            match fs.resolve(&root, true) {
                Ok(resolved) if resolved == fs.spell(&root) => {}
                _ => return Ok(None),
            }
            // A pattern deeper than one name would mean walking (and
            // hashing) far more than is copied: the layer ids key it.
            if pattern.contains('/') {
                return Ok(None);
            }
            let Some(top) = fs.lookup(&root) else {
                missing.push(i);
                continue;
            };
            // What is copied: the path's tree, or for a pattern in its
            // last name the trees of the names it matches.
            let tops: Vec<(String, &FsEntry)> = if pattern.is_empty() {
                vec![(root.clone(), top)]
            } else {
                let mut matched = Vec::new();
                for (name, entry) in fs.read_dir(&root) {
                    if !go_match(&pattern, &name) {
                        continue;
                    }
                    // A match that is a link is followed by COPY.
                    if matches!(entry.kind, FsKind::Symlink(_)) {
                        return Ok(None);
                    }
                    matched.push((format!("{}/{name}", root.trim_end_matches('/')), entry));
                }
                matched
            };
            for (path, entry) in tops {
                listed.push((i, path.clone(), entry));
                if entry.is_dir() {
                    for (below, e) in fs.walk(&path) {
                        listed.push((i, below.to_string(), e));
                    }
                }
            }
        }
        let Some(contents) = self.contents(fs, &listed)? else {
            return Ok(None);
        };
        let mut out = DigestWriter::new(io::sink());
        let io = |e: io::Error| e.to_string();
        write!(out, "image-sources\0{missing:?}\0").map_err(io)?;
        // Paths of one file (hard links) within one source stay links.
        let mut first_path: HashMap<(usize, (usize, u64)), &str> = HashMap::new();
        for (i, path, e) in &listed {
            write!(out, "{i}\0").map_err(io)?;
            out.write_all(path.as_bytes()).map_err(io)?;
            let owner = if mask.owner { (e.uid, e.gid) } else { (0, 0) };
            write!(
                out,
                "\0{:o}\0{}:{}\0{}\0",
                e.mode & mask.mode,
                owner.0,
                owner.1,
                e.size
            )
            .map_err(io)?;
            match (&e.kind, e.content_key()) {
                (FsKind::File | FsKind::Hardlink(_), Some(key)) => {
                    match first_path.get(&(*i, key)) {
                        Some(first) => write!(out, "link\0{first}").map_err(io)?,
                        None => {
                            first_path.insert((*i, key), path);
                            write!(out, "file\0{}", contents[&key]).map_err(io)?
                        }
                    }
                }
                (FsKind::Dir, _) => write!(out, "dir").map_err(io)?,
                (FsKind::Symlink(target), _) => write!(out, "symlink\0{target}").map_err(io)?,
                (kind, _) => write!(out, "{kind:?}").map_err(io)?,
            }
            for (name, value) in &e.xattrs {
                write!(out, "\0{name}=").map_err(io)?;
                out.write_all(value).map_err(io)?;
            }
            out.write_all(b"\n").map_err(io)?;
        }
        Ok(Some(out.finish().0))
    }

    /// The content digest of every regular file in `listed`, from the
    /// index where a blob's files were hashed before, else from the blob
    /// (remembered then). `None` when a file's bytes are not in the view.
    fn contents(
        &self,
        fs: &ImageFs,
        listed: &[(usize, String, &FsEntry)],
    ) -> Result<Option<Contents>, String> {
        let mut by_layer: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for (_, _, e) in listed {
            if let Some((layer, ordinal)) = e.content_key() {
                by_layer.entry(layer).or_default().push(ordinal);
            }
        }
        let mut found = HashMap::new();
        let mut todo = Vec::new();
        for (layer, ordinals) in &by_layer {
            let Some(blob) = fs.layer_digest(*layer) else {
                return Ok(None);
            };
            // A broken index only costs hashing again.
            let known = self.cache.file_digests(&blob).unwrap_or_default();
            for ordinal in ordinals {
                match known.get(ordinal) {
                    Some(d) => {
                        found.insert((*layer, *ordinal), *d);
                    }
                    None => todo.push((*layer, *ordinal)),
                }
            }
        }
        if !todo.is_empty() {
            let hashed = fs.content_digests(&todo).map_err(|e| e.to_string())?;
            let mut per_blob: BTreeMap<usize, Vec<(u64, Digest)>> = BTreeMap::new();
            for (&(layer, ordinal), digest) in &hashed {
                per_blob.entry(layer).or_default().push((ordinal, *digest));
            }
            for (layer, digests) in per_blob {
                if let Some(blob) = fs.layer_digest(layer) {
                    let _ = self.cache.put_file_digests(&blob, &digests);
                }
            }
            found.extend(hashed);
        }
        let complete = by_layer
            .iter()
            .all(|(l, ords)| ords.iter().all(|o| found.contains_key(&(*l, *o))));
        Ok(complete.then_some(found))
    }
}
