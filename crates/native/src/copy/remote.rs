//! ADD's remote sources: http(s) downloads and git repositories, with
//! BuildKit's rules for telling them apart from local paths.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use sha2::Digest as _;

use super::{set_mtime, ErrorKind};

/// Whether BuildKit treats `src` as a URL to download.
pub(crate) fn is_http(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// A git source, as BuildKit's `gitutil.ParseGitRef` recognises one:
/// `git://…`, `ssh://…`, `user@host:path`, or an http(s) URL whose path
/// ends in `.git`; `#ref:subdir` picks a branch, tag or commit and a
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitRef {
    pub remote: String,
    pub reference: Option<String>,
    pub subdir: Option<String>,
}

impl GitRef {
    pub(crate) fn parse(src: &str) -> Option<GitRef> {
        let (remote, fragment) = match src.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (src, None),
        };
        let is_git = if let Some(rest) = remote
            .strip_prefix("https://")
            .or_else(|| remote.strip_prefix("http://"))
        {
            let path = rest.split_once('/').map_or("", |(_, p)| p);
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            path.ends_with(".git")
        } else if remote.starts_with("git://") || remote.starts_with("ssh://") {
            true
        } else {
            is_scp_like(remote)
        };
        if !is_git {
            return None;
        }
        let (reference, subdir) = match fragment {
            None => (None, None),
            Some(f) => {
                let (r, s) = match f.split_once(':') {
                    Some((r, s)) => (r, Some(s)),
                    None => (f, None),
                };
                (
                    (!r.is_empty()).then(|| r.to_string()),
                    s.filter(|s| !s.is_empty()).map(str::to_string),
                )
            }
        };
        Some(GitRef {
            remote: remote.to_string(),
            reference,
            subdir,
        })
    }

    /// Checks the repository out into `dir` (`.git` removed unless
    /// `keep_git_dir`) and returns the path inside `dir` to copy: `""` or
    /// the subdirectory.
    pub(crate) fn checkout(&self, dir: &Path, keep_git_dir: bool) -> Result<String, ErrorKind> {
        let fail = |reason: String| ErrorKind::Git {
            url: self.remote.clone(),
            reason,
        };
        let reference = self.reference.as_deref().unwrap_or("HEAD");
        git(dir, &["init", "-q", "."]).map_err(fail)?;
        let shallow = git(
            dir,
            &[
                "fetch",
                "-q",
                "--depth=1",
                "--no-tags",
                &self.remote,
                reference,
            ],
        );
        if let Err(shallow_err) = shallow {
            // Servers that refuse a commit id in a shallow fetch still
            // serve it from a full one.
            let full = git(dir, &["fetch", "-q", "--no-tags", &self.remote]);
            if full.is_err() || !is_commit_id(reference) {
                return Err(fail(shallow_err));
            }
            git(dir, &["checkout", "-q", reference]).map_err(fail)?;
        } else {
            git(dir, &["checkout", "-q", "FETCH_HEAD"]).map_err(fail)?;
        }
        if !keep_git_dir {
            std::fs::remove_dir_all(dir.join(".git")).map_err(|e| fail(e.to_string()))?;
        }
        match &self.subdir {
            None => Ok(String::new()),
            Some(sub) => {
                let clean = super::paths::clean_clamped(sub);
                if !dir.join(&clean).is_dir() {
                    return Err(fail(format!(
                        "the repository has no directory {sub:?} at {reference}"
                    )));
                }
                Ok(clean)
            }
        }
    }
}

fn is_commit_id(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `user@host:path`, git's scp-like syntax.
fn is_scp_like(src: &str) -> bool {
    let Some((user, rest)) = src.split_once('@') else {
        return false;
    };
    let Some((host, _)) = rest.split_once(':') else {
        return false;
    };
    !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !host.is_empty()
        && !host.contains('/')
}

fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| format!("cannot run git (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or(""),
            stderr.trim()
        ))
    }
}

/// The mode of a downloaded file, BuildKit's.
pub(crate) const DOWNLOAD_MODE: u32 = 0o600;

/// Downloads `url` into `dir` as BuildKit's http source does for ADD: the
/// file is named after the URL path's last component (`__unnamed__` when
/// there is none; the Dockerfile frontend always names it, so
/// `Content-Disposition` plays no part), mode 0600, mtime from
/// `Last-Modified`, else 1970-01-01 (BuildKit's `time.Unix(0, 0)`, so an
/// image does not change with the time of the download). Returns the file
/// name.
pub(crate) fn download(url: &str, checksum: Option<&str>, dir: &Path) -> Result<String, ErrorKind> {
    let fail = |reason: String| ErrorKind::Http {
        url: url.to_string(),
        reason,
    };
    let name = file_name(url);
    let path = dir.join(&name);
    let fetched = std::thread::scope(|s| {
        s.spawn(|| fetch(url, &path))
            .join()
            .unwrap_or_else(|_| Err("the download thread panicked".into()))
    })
    .map_err(fail)?;
    if let Some(expected) = checksum {
        let actual = digest_file(&path, expected).map_err(fail)?;
        if actual != expected {
            return Err(ErrorKind::Checksum {
                url: url.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    let mtime = fetched
        .last_modified
        .and_then(|h| parse_http_date(&h))
        .unwrap_or(0);
    set_mtime(&path, mtime).map_err(|e| fail(e.to_string()))?;
    Ok(name)
}

struct Fetched {
    last_modified: Option<String>,
}

/// Streams the body to `path`, blocking on the process's runtime.
fn fetch(url: &str, path: &Path) -> Result<Fetched, String> {
    let rt = kiln_backend::runtime()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| e.to_string())?;
        let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("the server answered {status}"));
        }
        let last_modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut file = std::fs::File::create(path).map_err(|e| e.to_string())?;
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        Ok(Fetched { last_modified })
    })
}

fn file_name(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme.split_once('/').map_or("", |(_, p)| p);
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." => base.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

/// The file's digest in the algorithm `expected` names.
fn digest_file(path: &Path, expected: &str) -> Result<String, String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let algo = expected.split_once(':').map_or("sha256", |(a, _)| a);
    let hex = match algo {
        "sha384" => hex::encode(sha2::Sha384::digest(&data)),
        "sha512" => hex::encode(sha2::Sha512::digest(&data)),
        _ => hex::encode(sha2::Sha256::digest(&data)),
    };
    Ok(format!("{algo}:{hex}"))
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
pub(crate) fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_refs_follow_buildkit() {
        let g = GitRef::parse("https://github.com/moby/buildkit.git#v0.10.1:docs").unwrap();
        assert_eq!(g.remote, "https://github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.10.1"));
        assert_eq!(g.subdir.as_deref(), Some("docs"));
        assert!(GitRef::parse("git@github.com:moby/buildkit").is_some());
        assert!(GitRef::parse("git://127.0.0.1:9418/repo").is_some());
        assert!(GitRef::parse("https://example.com/file.tar.gz").is_none());
        assert!(GitRef::parse("github.com/moby/buildkit").is_none());
        assert!(GitRef::parse("./local@x:y/z").is_none());
        assert!(GitRef::parse("file.txt").is_none());
    }

    #[test]
    fn names_and_dates() {
        assert_eq!(file_name("https://example.com/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(file_name("https://example.com/"), "__unnamed__");
        assert_eq!(file_name("https://example.com"), "__unnamed__");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
