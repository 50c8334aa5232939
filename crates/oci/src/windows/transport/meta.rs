//! The binary metadata inside backup streams, as go-winio reads and writes
//! it: extended attributes (`ea.go`, `FILE_FULL_EA_INFORMATION` entries)
//! and reparse points (`reparse.go`, `REPARSE_DATA_BUFFER` for symlinks and
//! mount points). Decoding is bounds-checked where go-winio would panic.

/// `IO_REPARSE_TAG_MOUNT_POINT`: a junction.
const TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// `IO_REPARSE_TAG_SYMLINK`.
const TAG_SYMLINK: u32 = 0xA000_000C;
/// `SYMLINK_FLAG_RELATIVE`.
const SYMLINK_RELATIVE: u32 = 1;

/// One EA: its name and value (flags cannot be carried by a tar header,
/// so go-winio drops them and writes 0).
pub(super) type Ea = (String, Vec<u8>);

/// Decodes a `BACKUP_EA_DATA` stream into names and values.
pub(super) fn decode_eas(mut b: &[u8]) -> Result<Vec<Ea>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 8 {
            return Err("EA entry shorter than its 8-byte header".into());
        }
        let next = u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize;
        let name_len = usize::from(b[5]);
        let value_len = usize::from(u16::from_le_bytes([b[6], b[7]]));
        let value_at = 8 + name_len + 1;
        if value_at + value_len > b.len() || next > b.len() {
            return Err("EA entry runs past the end of the stream".into());
        }
        if next != 0 && next < value_at + value_len {
            return Err("EA entry's next offset points inside the entry".into());
        }
        let name = std::str::from_utf8(&b[8..8 + name_len])
            .map_err(|_| "EA name is not UTF-8".to_string())?;
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!(
                "EA name {name:?} cannot be a PAX record key (empty, or holds '=' or NUL)"
            ));
        }
        out.push((name.to_string(), b[value_at..value_at + value_len].to_vec()));
        if next == 0 {
            break;
        }
        b = &b[next..];
    }
    Ok(out)
}

/// Encodes EAs as go-winio's `EncodeExtendedAttributes` does: each entry
/// padded to 4 bytes, the last with a zero next offset, flags 0.
pub(super) fn encode_eas(eas: &[Ea]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (i, (name, value)) in eas.iter().enumerate() {
        let name_len = u8::try_from(name.len())
            .map_err(|_| format!("EA name {name:?} is longer than 255 bytes"))?;
        let value_len = u16::try_from(value.len())
            .map_err(|_| format!("EA {name:?} has a value longer than 65535 bytes"))?;
        let size = 8 + name.len() + 1 + value.len();
        let padded = (size + 3) & !3;
        let next = if i + 1 == eas.len() { 0 } else { padded as u32 };
        out.extend_from_slice(&next.to_le_bytes());
        out.push(0);
        out.push(name_len);
        out.extend_from_slice(&value_len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.resize(out.len() + padded - size, 0);
    }
    Ok(out)
}

/// A symlink or junction: the print name (what a tar's `Linkname` holds)
/// and whether it is a mount point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Reparse {
    pub target: String,
    pub mount_point: bool,
}

/// Decodes a `BACKUP_REPARSE_DATA` stream as go-winio's
/// `DecodeReparsePoint` does: the print name of a symlink or mount point;
/// any other tag is refused, as go-winio refuses it.
pub(super) fn decode_reparse(b: &[u8]) -> Result<Reparse, String> {
    if b.len() < 16 {
        return Err("reparse data shorter than its header".into());
    }
    let tag = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let mount_point = match tag {
        TAG_MOUNT_POINT => true,
        TAG_SYMLINK => false,
        _ => {
            return Err(format!(
                "unsupported reparse point {tag:x}: only symlinks and junctions can be carried in a layer (go-winio's UnsupportedReparsePointError)"
            ))
        }
    };
    let data = &b[8..];
    let field = |i: usize| usize::from(u16::from_le_bytes([data[i], data[i + 1]]));
    let start = 8 + field(4) + if mount_point { 0 } else { 4 };
    let end = start + field(6);
    let name = data
        .get(start..end)
        .ok_or("reparse point's print name runs past its data")?;
    let units = name
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let target = char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| "reparse point's print name is not valid UTF-16".to_string())?;
    Ok(Reparse {
        target,
        mount_point,
    })
}

/// Encodes a symlink or junction as go-winio's `EncodeReparsePoint` does:
/// the NT substitute name (`\??\` for a drive letter or `\\?\`,
/// `\??\UNC\` for `\\`) and the print name, both NUL-terminated; anything
/// else is a relative symlink.
pub(super) fn encode_reparse(rp: &Reparse) -> Result<Vec<u8>, String> {
    let t = &rp.target;
    let b = t.as_bytes();
    let (nt, relative) = if let Some(rest) = t.strip_prefix(r"\\?\") {
        (format!(r"\??\{rest}"), false)
    } else if let Some(rest) = t.strip_prefix(r"\\") {
        (format!(r"\??\UNC\{rest}"), false)
    } else if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        (format!(r"\??\{t}"), false)
    } else {
        (t.clone(), true)
    };
    let utf16z = |s: &str| -> Vec<u16> { s.encode_utf16().chain([0]).collect() };
    let print = utf16z(t);
    let subst = utf16z(&nt);
    let mut size = 8 + 2 * (print.len() + subst.len());
    if !rp.mount_point {
        size += 4;
    }
    let len16 = |n: usize| {
        u16::try_from(n).map_err(|_| format!("link target {t:?} is too long for a reparse point"))
    };
    let mut out = Vec::with_capacity(size + 8);
    let tag = if rp.mount_point {
        TAG_MOUNT_POINT
    } else {
        TAG_SYMLINK
    };
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&len16(size)?.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len16((subst.len() - 1) * 2)?.to_le_bytes());
    out.extend_from_slice(&len16(subst.len() * 2)?.to_le_bytes());
    out.extend_from_slice(&len16((print.len() - 1) * 2)?.to_le_bytes());
    if !rp.mount_point {
        let flags = if relative { SYMLINK_RELATIVE } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
    }
    for unit in subst.iter().chain(&print) {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    Ok(out)
}
