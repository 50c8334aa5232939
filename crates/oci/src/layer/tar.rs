//! Tar headers written byte by byte, the way Go's `archive/tar` writes
//! them: USTAR when a header fits, a PAX extended header (records sorted by
//! key) when it does not or when there are xattrs; no user or group names,
//! no atime or ctime.

use std::collections::BTreeMap;
use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// The tar fields of one entry.
pub(crate) struct Header<'a> {
    /// Name in the archive; directories end with `/`.
    pub name: &'a str,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub linkname: &'a str,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a [(String, Vec<u8>)],
    /// Further PAX records, written as given; they override any record
    /// the fields above produce (Windows layers need `MSWINDOWS.*` and
    /// fractional times, which are not xattrs).
    pub pax: &'a [(String, Vec<u8>)],
}

const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;

/// Writes the header (with a PAX header first when needed).
pub(crate) fn write_header<W: Write + ?Sized>(w: &mut W, h: &Header<'_>) -> io::Result<()> {
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // A name in a PAX record is written as the bytes it stands for (see
    // `crate::name`), and the USTAR field keeps its ASCII characters, as
    // Go's writer (and so BuildKit's layers) does.
    let ascii_name;
    let (prefix, name) = match split_name(h.name) {
        Some(split) => split,
        None => {
            pax.insert("path".into(), crate::name::to_bytes(h.name).into_owned());
            ascii_name = ascii(h.name);
            ("", truncate(&ascii_name, 100))
        }
    };
    let ascii_linkname;
    let linkname = if h.linkname.len() > 100 || !h.linkname.is_ascii() {
        pax.insert(
            "linkpath".into(),
            crate::name::to_bytes(h.linkname).into_owned(),
        );
        ascii_linkname = ascii(h.linkname);
        truncate(&ascii_linkname, 100)
    } else {
        h.linkname
    };
    let mut numeric = |key: &str, v: u64, max: u64| -> u64 {
        if v > max {
            pax.insert(key.into(), v.to_string().into_bytes());
            0
        } else {
            v
        }
    };
    let uid = numeric("uid", h.uid.into(), MAX_OCTAL_7);
    let gid = numeric("gid", h.gid.into(), MAX_OCTAL_7);
    let size = numeric("size", h.size, MAX_OCTAL_11);
    let mtime = if h.mtime < 0 || h.mtime as u64 > MAX_OCTAL_11 {
        pax.insert("mtime".into(), h.mtime.to_string().into_bytes());
        0
    } else {
        h.mtime as u64
    };
    for (k, v) in h.xattrs {
        pax.insert(format!("SCHILY.xattr.{k}"), v.clone());
    }
    for (k, v) in h.pax {
        pax.insert(k.clone(), v.clone());
    }

    if !pax.is_empty() {
        let body = pax_records(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        let pax_name = pax_header_name(h.name);
        let block = ustar_block(&UstarFields {
            prefix: "",
            name: &pax_name,
            typeflag: b'x',
            mode: 0,
            uid: 0,
            gid: 0,
            size: body.len() as u64,
            mtime: 0,
            linkname: "",
            devmajor: 0,
            devminor: 0,
        });
        w.write_all(&block)?;
        w.write_all(&body)?;
        write_padding(w, body.len() as u64)?;
    }
    let block = ustar_block(&UstarFields {
        prefix,
        name,
        typeflag: h.typeflag,
        mode: h.mode,
        uid,
        gid,
        size,
        mtime,
        linkname,
        devmajor: h.devmajor,
        devminor: h.devminor,
    });
    w.write_all(&block)
}

/// Zero bytes up to the next 512-byte boundary after `len` bytes of data.
pub(crate) fn write_padding<W: Write + ?Sized>(w: &mut W, len: u64) -> io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn write_trailer<W: Write + ?Sized>(w: &mut W) -> io::Result<()> {
    w.write_all(&[0u8; 2 * BLOCK])
}

struct UstarFields<'a> {
    prefix: &'a str,
    name: &'a str,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    linkname: &'a str,
    devmajor: u32,
    devminor: u32,
}

fn ustar_block(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b[0..100], f.name);
    put_octal(&mut b[100..108], f.mode.into());
    put_octal(&mut b[108..116], f.uid);
    put_octal(&mut b[116..124], f.gid);
    put_octal(&mut b[124..136], f.size);
    put_octal(&mut b[136..148], f.mtime);
    b[156] = f.typeflag;
    put_str(&mut b[157..257], f.linkname);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_octal(&mut b[329..337], f.devmajor.into());
    put_octal(&mut b[337..345], f.devminor.into());
    put_str(&mut b[345..500], f.prefix);
    // The checksum is computed with its own field as spaces.
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Zero-padded octal, NUL-terminated, as Go's `formatOctal`.
fn put_octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0width$o}", width = field.len() - 1);
    put_str(field, &s);
}

/// USTAR's name/prefix split, when the name fits one of the two ways.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if !name.is_ascii() {
        return None;
    }
    if name.len() <= 100 {
        return Some(("", name));
    }
    let bytes = name.as_bytes();
    // Split at the last '/' that leaves the prefix within 155 bytes, with a
    // non-empty name of at most 100 bytes.
    let limit = bytes.len().min(156);
    let i = bytes[..limit].iter().rposition(|&c| c == b'/')?;
    let (prefix, rest) = (&name[..i], &name[i + 1..]);
    (!rest.is_empty() && rest.len() <= 100 && prefix.len() <= 155).then_some((prefix, rest))
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Go's name for an extended header: `dir/PaxHeaders.0/file`.
fn pax_header_name(name: &str) -> String {
    let trimmed = name.trim_end_matches('/');
    let (dir, file) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    truncate(&ascii(&format!("{dir}PaxHeaders.0/{file}")), 100).to_string()
}

/// `s` without its characters that are not ASCII (Go's `toASCII`).
fn ascii(s: &str) -> String {
    s.chars().filter(char::is_ascii).collect()
}

/// The body of a PAX extended header: `"<len> <key>=<value>\n"` records,
/// where `<len>` counts the whole record, its own digits included.
pub fn pax_records<'a>(records: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut m = BTreeMap::new();
        m.insert("path".to_string(), vec![b'a'; 3]);
        let records = |m: &BTreeMap<String, Vec<u8>>| {
            pax_records(m.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        };
        assert_eq!(records(&m), b"12 path=aaa\n");
        m.insert("path".to_string(), vec![b'a'; 92]);
        let r = records(&m);
        assert_eq!(r.len(), 102);
        assert!(r.starts_with(b"102 path="));
    }

    #[test]
    fn long_names_split_or_go_to_pax() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        assert_eq!(split_name(&long), Some((&long[..120], &long[121..])));
        assert_eq!(split_name(&"x".repeat(101)), None);
        assert_eq!(pax_header_name("a/b/"), "a/PaxHeaders.0/b");
        assert_eq!(pax_header_name("file"), "PaxHeaders.0/file");
    }
}
