//! Listing a directory as layer entries on Windows. A Windows file has no
//! mode bits, uid, gid, device numbers or POSIX xattrs, so each entry gets
//! what docker and BuildKit record for a file sent from a Windows client.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::windows::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::{EntryKind, FileSource, LayerEntry};
use crate::sys::{FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_REPARSE_POINT};
use crate::tree::{FileIdentity, TreeFile, TreeRoot};

/// Lists the tree under `root` (not `root` itself) as layer entries, in
/// layer order. Symlinks and junctions are not followed but listed as
/// symlinks, their targets as Windows spells them; other reparse points
/// (cloud or deduplicated files) are refused, as reading one is not
/// reading a plain file. A file with several links becomes a file at its
/// first path and hard links at the others. Every entry is owned by 0:0,
/// with the mode of [`windows_mode`], its mtime the last write time, and
/// no xattrs. Regular files are [`FileSource::Tree`] sources: writing the
/// layer fails if one changes after this listing.
pub fn entries_from_dir(root: &Path) -> io::Result<Vec<LayerEntry>> {
    let mut out = Vec::new();
    let mut links = HashMap::new();
    let tree = Arc::new(TreeRoot::open(root)?);
    walk(&tree, "", &mut out, &mut links)?;
    Ok(out)
}

/// The mode docker and BuildKit give a file from a Windows client: Go's
/// `os.FileMode` on Windows (0o666, or 0o444 when read-only, plus 0o111
/// on directories) through moby's `chmodTarEntry` and fsutil's identical
/// rule (`& 0o755 | 0o111`), so every file is executable: Windows keeps no
/// execute bit to tell. The result is 0o755, or 0o555 when read-only.
fn windows_mode(md: &Metadata) -> u32 {
    let go_mode = if md.file_attributes() & FILE_ATTRIBUTE_READONLY != 0 {
        0o444
    } else {
        0o666
    };
    (go_mode & 0o755) | 0o111
}

fn walk(
    tree: &Arc<TreeRoot>,
    prefix: &str,
    out: &mut Vec<LayerEntry>,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut names = tree.read_dir(&crate::name::to_path(prefix.trim_end_matches('/')))?;
    names.sort();
    for name in names {
        let spelled = crate::name::from_os(&name).map_err(invalid)?;
        let rel = format!("{prefix}{spelled}");
        let rel_path = crate::name::to_path(&rel);
        let md = tree.symlink_metadata(&rel_path)?;
        let kind = if md.is_symlink() {
            let target = tree.read_link(&rel_path)?;
            EntryKind::Symlink(
                crate::name::from_os_string(target.into_os_string()).map_err(invalid)?,
            )
        } else if md.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{}: a reparse point that is not a symlink or junction (a cloud or deduplicated file?); kiln reads only plain files",
                    tree.path().join(&*rel_path).display()
                ),
            ));
        } else if md.is_dir() {
            EntryKind::Dir
        } else {
            let file = tree.open_file(&rel_path)?;
            match crate::sys::link_key(&md, &file)? {
                Some(key) if links.contains_key(&key) => EntryKind::Hardlink(links[&key].clone()),
                key => {
                    if let Some(key) = key {
                        links.insert(key, rel.clone());
                    }
                    EntryKind::File(FileSource::Tree(TreeFile {
                        root: Arc::clone(tree),
                        path: rel_path.clone().into_owned(),
                        identity: FileIdentity::of_file(&file)?,
                    }))
                }
            }
        };
        let is_dir = kind == EntryKind::Dir;
        out.push(LayerEntry {
            path: rel.clone(),
            kind,
            mode: windows_mode(&md),
            // A Windows owner is a SID, which maps to no uid; docker and
            // BuildKit record root.
            uid: 0,
            gid: 0,
            mtime: crate::sys::stat_times(&md).modified.0,
            // NTFS has extended attributes, but not POSIX xattrs: none of
            // them means anything to a Linux reader of the layer.
            xattrs: Vec::new(),
        });
        if is_dir {
            walk(tree, &format!("{rel}/"), out, links)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_dirs_and_hard_links_with_windows_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("app/sub")).unwrap();
        std::fs::write(root.join("app/run.exe"), b"MZ").unwrap();
        std::fs::write(root.join("app/sub/ro.txt"), b"read only").unwrap();
        let mut perms = std::fs::metadata(root.join("app/sub/ro.txt"))
            .unwrap()
            .permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(root.join("app/sub/ro.txt"), perms).unwrap();
        std::fs::hard_link(root.join("app/run.exe"), root.join("app/z-link.exe")).unwrap();
        crate::sys::set_times_no_follow(
            &root.join("app/run.exe"),
            (1_600_000_000, 0),
            (1_600_000_000, 0),
        )
        .unwrap();

        let entries = entries_from_dir(root).unwrap();
        let summary: Vec<(&str, u32)> = entries.iter().map(|e| (&e.path[..], e.mode)).collect();
        assert_eq!(
            summary,
            [
                ("app", 0o755),
                ("app/run.exe", 0o755),
                ("app/sub", 0o755),
                ("app/sub/ro.txt", 0o555),
                ("app/z-link.exe", 0o755),
            ]
        );
        assert!(entries
            .iter()
            .all(|e| e.uid == 0 && e.gid == 0 && e.xattrs.is_empty()));
        assert_eq!(entries[1].mtime, 1_600_000_000);
        match &entries[1].kind {
            EntryKind::File(FileSource::Tree(t)) => {
                assert_eq!(t.identity.size, 2);
                assert_eq!(t.path, Path::new("app/run.exe"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(entries[4].kind, EntryKind::Hardlink("app/run.exe".into()));

        // Written into a layer, the listed files read back as listed.
        let (_, blob) = crate::write_layer(
            entries,
            &crate::LayerOptions {
                compression: crate::Compression::None,
                ..Default::default()
            },
            Vec::new(),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&blob);
        assert!(text.contains("app/run.exe") && text.contains("read only"));

        let mut perms = std::fs::metadata(root.join("app/sub/ro.txt"))
            .unwrap()
            .permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(root.join("app/sub/ro.txt"), perms).unwrap();
    }
}
