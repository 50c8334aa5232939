//! Security descriptors: the SDDL subset Windows layers need, encoded to
//! the self-relative binary form that `MSWINDOWS.rawsd` carries, and
//! decoded back to SDDL.
//!
//! The layout is the one Windows' `ConvertStringSecurityDescriptorToSecurityDescriptorW`
//! produces and every known producer's constant shows (BuildKit, ggcr, ko,
//! imgutil): the 20-byte header, then owner, group, DACL, in that order.

use std::fmt;

/// BuildKit's descriptor for regular files (`util/winlayers/differ.go`):
/// Administrators and SYSTEM full control, Users read and execute.
pub const FILE_SDDL: &str = "O:BAG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)";

/// BuildKit's descriptor for directories, the usual drive-root ACL: Users
/// may read, execute and create, CREATOR OWNER gets full control of what
/// it creates.
pub const DIR_SDDL: &str = "O:BAG:SYD:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)(A;CI;LC;;;BU)(A;CI;DC;;;BU)";

/// `SE_SELF_RELATIVE`: the descriptor is one block with offsets.
pub const SE_SELF_RELATIVE: u16 = 0x8000;
/// `SE_DACL_PRESENT`.
pub const SE_DACL_PRESENT: u16 = 0x0004;
/// `SE_DACL_PROTECTED` (SDDL `D:P`): no inheritance from the parent.
pub const SE_DACL_PROTECTED: u16 = 0x1000;

const HEADER_LEN: usize = 20;
const ACL_REVISION: u8 = 2;

/// A security identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sid {
    /// The 48-bit identifier authority (5 for NT AUTHORITY).
    pub authority: u64,
    /// The sub-authorities (at most 15).
    pub sub_authorities: Vec<u32>,
}

/// SDDL's two-letter names for the SIDs Windows layers use.
const SID_ALIASES: [(&str, u64, &[u32]); 4] = [
    ("BA", 5, &[32, 544]),
    ("BU", 5, &[32, 545]),
    ("SY", 5, &[18]),
    ("CO", 3, &[0]),
];

impl Sid {
    /// `S-1-<authority>-<sub>…` or one of the aliases `BA`, `BU`, `SY`,
    /// `CO`. Container accounts (`ContainerAdministrator`
    /// `S-1-5-93-2-1`, `ContainerUser` `S-1-5-93-2-2`) have no alias.
    pub fn parse(text: &str) -> Result<Sid, SdError> {
        if let Some((_, authority, subs)) = SID_ALIASES.iter().find(|(a, ..)| *a == text) {
            return Ok(Sid {
                authority: *authority,
                sub_authorities: subs.to_vec(),
            });
        }
        let bad = || SdError(format!("invalid SID {text:?}"));
        let mut parts = text.strip_prefix("S-1-").ok_or_else(bad)?.split('-');
        let authority = parts.next().ok_or_else(bad)?;
        let authority = match authority
            .strip_prefix("0x")
            .or(authority.strip_prefix("0X"))
        {
            Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad())?,
            None => decimal(authority).ok_or_else(bad)?,
        };
        let sub_authorities = parts
            .map(|p| {
                decimal(p)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if authority >= 1 << 48 || sub_authorities.len() > 15 {
            return Err(bad());
        }
        Ok(Sid {
            authority,
            sub_authorities,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        out.push(self.sub_authorities.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for s in &self.sub_authorities {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }

    fn len(&self) -> usize {
        8 + 4 * self.sub_authorities.len()
    }

    fn decode(bytes: &[u8]) -> Result<Sid, SdError> {
        let [revision, count, ..] = *bytes else {
            return Err(SdError("SID truncated".into()));
        };
        let count = usize::from(count);
        if revision != 1 || count > 15 || bytes.len() < 8 + 4 * count {
            return Err(SdError("invalid or truncated SID".into()));
        }
        let mut authority = [0u8; 8];
        authority[2..].copy_from_slice(&bytes[2..8]);
        Ok(Sid {
            authority: u64::from_be_bytes(authority),
            sub_authorities: bytes[8..8 + 4 * count]
                .chunks(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }
}

impl fmt::Display for Sid {
    /// The alias when there is one, else `S-1-…` with the authority in hex
    /// when it does not fit 32 bits, as Windows prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((alias, ..)) = SID_ALIASES
            .iter()
            .find(|(_, a, s)| *a == self.authority && *s == self.sub_authorities.as_slice())
        {
            return f.write_str(alias);
        }
        if self.authority >> 32 == 0 {
            write!(f, "S-1-{}", self.authority)?;
        } else {
            write!(f, "S-1-0x{:012X}", self.authority)?;
        }
        for s in &self.sub_authorities {
            write!(f, "-{s}")?;
        }
        Ok(())
    }
}

fn decimal(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// ACE flags by SDDL name.
const ACE_FLAGS: [(&str, u8); 5] = [
    ("OI", 0x01),
    ("CI", 0x02),
    ("NP", 0x04),
    ("IO", 0x08),
    ("ID", 0x10),
];

/// Access rights by SDDL name. `FA` (`FILE_ALL_ACCESS`) is the only
/// composite; the rest are single bits, listed in the order the decoder
/// prints them.
const RIGHTS: [(&str, u32); 13] = [
    ("FA", 0x001f_01ff),
    ("GA", 0x1000_0000),
    ("GR", 0x8000_0000),
    ("GW", 0x4000_0000),
    ("GX", 0x2000_0000),
    ("RC", 0x0002_0000),
    ("WD", 0x0004_0000),
    ("SD", 0x0001_0000),
    ("WO", 0x0008_0000),
    ("CC", 0x0000_0001),
    // On files and directories 0x2 is FILE_WRITE_DATA/FILE_ADD_FILE and
    // 0x4 FILE_APPEND_DATA/FILE_ADD_SUBDIRECTORY; SDDL only has the
    // directory-service names for them.
    ("DC", 0x0000_0002),
    ("LC", 0x0000_0004),
    ("SW", 0x0000_0008),
];

/// One access-control entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    /// `true` for `A` (ACCESS_ALLOWED), `false` for `D` (ACCESS_DENIED).
    pub allow: bool,
    /// Inheritance flags (`OI` 0x1, `CI` 0x2, `NP` 0x4, `IO` 0x8, `ID` 0x10).
    pub flags: u8,
    /// The access mask.
    pub mask: u32,
    /// Whom it applies to.
    pub sid: Sid,
}

impl Ace {
    fn parse(text: &str) -> Result<Ace, SdError> {
        let bad = |why: &str| SdError(format!("ACE ({text}): {why}"));
        let fields: Vec<&str> = text.split(';').collect();
        let [kind, flags, rights, object, inherited, sid] = fields[..] else {
            return Err(bad("expected 6 fields separated by ';'"));
        };
        let allow = match kind {
            "A" => true,
            "D" => false,
            _ => return Err(bad("only A (allow) and D (deny) ACEs are supported")),
        };
        if !object.is_empty() || !inherited.is_empty() {
            return Err(bad("object ACE GUIDs are not supported"));
        }
        let mut flag_bits = 0u8;
        for pair in pairs(flags).ok_or_else(|| bad("odd-length flags"))? {
            let (_, bit) = ACE_FLAGS
                .iter()
                .find(|(n, _)| *n == pair)
                .ok_or_else(|| bad(&format!("unknown ACE flag {pair:?}")))?;
            flag_bits |= bit;
        }
        let mask = if let Some(hex) = rights.strip_prefix("0x").or(rights.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).map_err(|_| bad("bad hex access mask"))?
        } else {
            let mut mask = 0u32;
            for pair in pairs(rights).ok_or_else(|| bad("odd-length rights"))? {
                let (_, bits) = RIGHTS
                    .iter()
                    .find(|(n, _)| *n == pair)
                    .ok_or_else(|| bad(&format!("unknown right {pair:?}")))?;
                mask |= bits;
            }
            mask
        };
        if mask == 0 {
            return Err(bad("no access rights"));
        }
        Ok(Ace {
            allow,
            flags: flag_bits,
            mask,
            sid: Sid::parse(sid)?,
        })
    }

    fn len(&self) -> usize {
        8 + self.sid.len()
    }
}

impl fmt::Display for Ace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.allow { "(A;" } else { "(D;" })?;
        for (name, bit) in ACE_FLAGS {
            if self.flags & bit != 0 {
                f.write_str(name)?;
            }
        }
        f.write_str(";")?;
        if let Some((name, _)) = RIGHTS.iter().find(|(_, m)| *m == self.mask) {
            f.write_str(name)?;
        } else if self.mask != 0 && RIGHTS[1..].iter().fold(self.mask, |m, (_, b)| m & !b) == 0 {
            for (name, bit) in &RIGHTS[1..] {
                if self.mask & bit != 0 {
                    f.write_str(name)?;
                }
            }
        } else {
            write!(f, "0x{:x}", self.mask)?;
        }
        write!(f, ";;;{})", self.sid)
    }
}

fn pairs(s: &str) -> Option<impl Iterator<Item = &str>> {
    (s.is_ascii() && s.len().is_multiple_of(2))
        .then(|| (0..s.len()).step_by(2).map(move |i| &s[i..i + 2]))
}

/// A security descriptor without a SACL, which is all layers carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// Control bits; [`SE_SELF_RELATIVE`] is always set in the binary form.
    pub control: u16,
    /// The owner.
    pub owner: Option<Sid>,
    /// The primary group.
    pub group: Option<Sid>,
    /// The DACL; `None` when there is none, which grants everyone
    /// everything.
    pub dacl: Option<Vec<Ace>>,
}

/// Why an SDDL string or a binary descriptor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("security descriptor: {0}")]
pub struct SdError(String);

impl SecurityDescriptor {
    /// Parses `O:<sid>G:<sid>D:[P](ace)…`; each part is optional, in that
    /// order.
    pub fn parse_sddl(sddl: &str) -> Result<SecurityDescriptor, SdError> {
        let mut sd = SecurityDescriptor {
            control: SE_SELF_RELATIVE,
            owner: None,
            group: None,
            dacl: None,
        };
        let mut rest = sddl;
        if let Some(r) = rest.strip_prefix("O:") {
            let (sid, r) = split_sid(r);
            sd.owner = Some(Sid::parse(sid)?);
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("G:") {
            let (sid, r) = split_sid(r);
            sd.group = Some(Sid::parse(sid)?);
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("D:") {
            sd.control |= SE_DACL_PRESENT;
            rest = r;
            if let Some(r) = rest.strip_prefix('P') {
                sd.control |= SE_DACL_PROTECTED;
                rest = r;
            }
            let mut aces = Vec::new();
            while let Some(r) = rest.strip_prefix('(') {
                let end = r
                    .find(')')
                    .ok_or_else(|| SdError(format!("unterminated ACE in {sddl:?}")))?;
                aces.push(Ace::parse(&r[..end])?);
                rest = &r[end + 1..];
            }
            sd.dacl = Some(aces);
        }
        if !rest.is_empty() {
            return Err(SdError(format!(
                "unsupported SDDL at {rest:?} in {sddl:?} (only O:, G: and D: with P are supported)"
            )));
        }
        Ok(sd)
    }

    /// The SDDL form, in the same syntax [`SecurityDescriptor::parse_sddl`]
    /// reads.
    pub fn to_sddl(&self) -> String {
        let mut out = String::new();
        if let Some(o) = &self.owner {
            out += &format!("O:{o}");
        }
        if let Some(g) = &self.group {
            out += &format!("G:{g}");
        }
        if let Some(aces) = &self.dacl {
            out += "D:";
            if self.control & SE_DACL_PROTECTED != 0 {
                out.push('P');
            }
            for ace in aces {
                out += &ace.to_string();
            }
        }
        out
    }

    /// The self-relative binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        out[0] = 1;
        out[2..4].copy_from_slice(&(self.control | SE_SELF_RELATIVE).to_le_bytes());
        let offset_at = |out: &mut Vec<u8>, field: usize| {
            let offset = out.len() as u32;
            out[field..field + 4].copy_from_slice(&offset.to_le_bytes());
        };
        if let Some(o) = &self.owner {
            offset_at(&mut out, 4);
            o.encode(&mut out);
        }
        if let Some(g) = &self.group {
            offset_at(&mut out, 8);
            g.encode(&mut out);
        }
        if let Some(aces) = &self.dacl {
            offset_at(&mut out, 16);
            let size = 8 + aces.iter().map(Ace::len).sum::<usize>();
            out.extend_from_slice(&[ACL_REVISION, 0]);
            out.extend_from_slice(&(size as u16).to_le_bytes());
            out.extend_from_slice(&(aces.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            for ace in aces {
                out.push(if ace.allow { 0 } else { 1 });
                out.push(ace.flags);
                out.extend_from_slice(&(ace.len() as u16).to_le_bytes());
                out.extend_from_slice(&ace.mask.to_le_bytes());
                ace.sid.encode(&mut out);
            }
        }
        out
    }

    /// Reads a self-relative descriptor, checking every offset and length.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecurityDescriptor, SdError> {
        check_self_relative(bytes)?;
        let err = |m: &str| SdError(m.to_string());
        let control = u16::from_le_bytes([bytes[2], bytes[3]]);
        if offset_at(bytes, 12) != 0 {
            return Err(err("SACLs are not supported"));
        }
        let part = |field: usize| match offset_at(bytes, field) {
            0 => None,
            o => Some(&bytes[o..]),
        };
        let owner = part(4).map(Sid::decode).transpose()?;
        let group = part(8).map(Sid::decode).transpose()?;
        let dacl = match part(16) {
            Some(acl) if control & SE_DACL_PRESENT != 0 => Some(decode_acl(acl)?),
            Some(_) => return Err(err("DACL offset without SE_DACL_PRESENT")),
            None => None,
        };
        Ok(SecurityDescriptor {
            control,
            owner,
            group,
            dacl,
        })
    }
}

/// Checks what any self-relative descriptor needs, whatever its ACEs or
/// SACL: revision 1, the self-relative bit, and every part's offset
/// inside the buffer.
pub fn check_self_relative(bytes: &[u8]) -> Result<(), SdError> {
    if bytes.len() < HEADER_LEN || bytes[0] != 1 {
        return Err(SdError("not a revision-1 descriptor".into()));
    }
    if u16::from_le_bytes([bytes[2], bytes[3]]) & SE_SELF_RELATIVE == 0 {
        return Err(SdError("not self-relative".into()));
    }
    for field in [4, 8, 12, 16] {
        let o = offset_at(bytes, field);
        if o != 0 && !(HEADER_LEN..bytes.len()).contains(&o) {
            return Err(SdError("offset outside the descriptor".into()));
        }
    }
    Ok(())
}

fn offset_at(bytes: &[u8], field: usize) -> usize {
    u32::from_le_bytes([
        bytes[field],
        bytes[field + 1],
        bytes[field + 2],
        bytes[field + 3],
    ]) as usize
}

fn decode_acl(acl: &[u8]) -> Result<Vec<Ace>, SdError> {
    let err = |m: &str| SdError(format!("DACL: {m}"));
    if acl.len() < 8 || !(2..=4).contains(&acl[0]) {
        return Err(err("bad header"));
    }
    let size = usize::from(u16::from_le_bytes([acl[2], acl[3]]));
    let count = u16::from_le_bytes([acl[4], acl[5]]);
    if size < 8 || size > acl.len() {
        return Err(err("size exceeds the descriptor"));
    }
    let mut body = &acl[8..size];
    let mut aces = Vec::new();
    for _ in 0..count {
        if body.len() < 8 {
            return Err(err("ACE truncated"));
        }
        let len = usize::from(u16::from_le_bytes([body[2], body[3]]));
        if len < 8 || len > body.len() {
            return Err(err("ACE size out of range"));
        }
        let allow = match body[0] {
            0 => true,
            1 => false,
            t => return Err(err(&format!("ACE type {t} is not supported"))),
        };
        let sid = Sid::decode(&body[8..len])?;
        if sid.len() != len - 8 {
            return Err(err("ACE size does not match its SID"));
        }
        aces.push(Ace {
            allow,
            flags: body[1],
            mask: u32::from_le_bytes([body[4], body[5], body[6], body[7]]),
            sid,
        });
        body = &body[len..];
    }
    Ok(aces)
}

/// An owner or group SID runs up to the next part (`G:`, `D:`, `S:`);
/// aliases are two letters.
fn split_sid(s: &str) -> (&str, &str) {
    if !s.starts_with("S-") {
        let end = s.char_indices().nth(2).map_or(s.len(), |(i, _)| i);
        return s.split_at(end);
    }
    let end = s
        .char_indices()
        .skip(2)
        .find(|(_, c)| !(c.is_ascii_hexdigit() || *c == '-' || *c == 'x' || *c == 'X'))
        .map_or(s.len(), |(i, _)| i);
    // A hex-looking `D` right after the SID is the DACL marker.
    match s[..end].rfind('D') {
        Some(d) if s[d..].starts_with("D:") => s.split_at(d),
        _ => s.split_at(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::base64;

    /// The constants in BuildKit's `util/winlayers/differ.go`.
    const BUILDKIT_FILE_SD: &str = "AQAEgBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQEAAAAAAAUSAAAAAgBMAAMAAAAAABgA/wEfAAECAAAAAAAFIAAAACACAAAAABQA/wEfAAEBAAAAAAAFEgAAAAAAGACpABIAAQIAAAAAAAUgAAAAIQIAAA==";
    const BUILDKIT_DIR_SD: &str = "AQAEgBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQEAAAAAAAUSAAAAAgCoAAcAAAAAAxgA/wEfAAECAAAAAAAFIAAAACACAAAAAxQA/wEfAAEBAAAAAAAFEgAAAAAAGAD/AR8AAQIAAAAAAAUgAAAAIAIAAAALFAAAAAAQAQEAAAAAAAMAAAAAAAMYAKkAEgABAgAAAAAABSAAAAAhAgAAAAIYAAQAAAABAgAAAAAABSAAAAAhAgAAAAIYAAIAAAABAgAAAAAABSAAAAAhAgAA";
    /// ggcr's and ko's `userOwnerAndGroupSID`.
    const GGCR_USERS_SD: &str =
        "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA==";
    /// imgutil's `AdministratratorOwnerAndGroupSID`.
    const IMGUTIL_ADMIN_SD: &str =
        "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAgAgAAAQIAAAAAAAUgAAAAIAIAAA==";

    fn encode(sddl: &str) -> Vec<u8> {
        SecurityDescriptor::parse_sddl(sddl).unwrap().to_bytes()
    }

    #[test]
    fn producers_constants_are_reproduced_byte_for_byte() {
        for (sddl, b64, len, control) in [
            (FILE_SDDL, BUILDKIT_FILE_SD, 124, 0x8004),
            (DIR_SDDL, BUILDKIT_DIR_SD, 216, 0x8004),
            ("O:BUG:BU", GGCR_USERS_SD, 52, 0x8000),
            ("O:BAG:BA", IMGUTIL_ADMIN_SD, 52, 0x8000),
        ] {
            let bytes = encode(sddl);
            assert_eq!(bytes.len(), len, "{sddl}");
            assert_eq!(base64::encode(&bytes), b64, "{sddl}");
            let decoded = SecurityDescriptor::from_bytes(&bytes).unwrap();
            assert_eq!(decoded.control, control);
            assert_eq!(decoded.to_sddl(), sddl);
        }
    }

    #[test]
    fn decoding_gives_owner_group_and_aces() {
        let sd =
            SecurityDescriptor::from_bytes(&base64::decode(BUILDKIT_DIR_SD.as_bytes()).unwrap())
                .unwrap();
        assert_eq!(sd.owner.unwrap().to_string(), "BA");
        assert_eq!(sd.group.unwrap().to_string(), "SY");
        let aces = sd.dacl.unwrap();
        assert_eq!(aces.len(), 7);
        assert_eq!(aces[3].flags, 0x0b);
        assert_eq!(aces[3].mask, 0x1000_0000);
        assert_eq!(aces[3].sid.to_string(), "CO");
        assert_eq!(aces[4].mask, 0x0012_00a9);
        assert_eq!((aces[5].mask, aces[6].mask), (4, 2));
    }

    #[test]
    fn chown_dacl_with_container_sids_round_trips() {
        // classic moby's `copy_windows.go` DACL for --chown, with
        // ContainerUser's SID, which has no alias.
        for sddl in [
            "O:S-1-5-93-2-2G:S-1-5-93-2-2D:P(A;OICI;GA;;;BA)(A;OICI;GA;;;SY)(A;OICI;GRGWGXRCWDSD;;;S-1-5-93-2-2)",
            "O:S-1-5-93-2-1G:SYD:(A;;0x1f01ff;;;S-1-5-93-2-1)",
            "O:BA",
            "D:",
        ] {
            let sd = SecurityDescriptor::parse_sddl(sddl).unwrap();
            let back = SecurityDescriptor::from_bytes(&sd.to_bytes()).unwrap();
            assert_eq!(back, sd);
            let expected = sddl.replace("0x1f01ff", "FA");
            assert_eq!(back.to_sddl(), expected);
        }
        let protected = encode("O:BAD:P(A;;FA;;;BA)");
        assert_eq!(u16::from_le_bytes([protected[2], protected[3]]), 0x9004);
        let sid = Sid::parse("S-1-5-93-2-1").unwrap();
        assert_eq!((sid.authority, sid.sub_authorities), (5, vec![93, 2, 1]));
    }

    #[test]
    fn unsupported_or_broken_input_is_refused() {
        for sddl in [
            "O:XX",
            "O:BAS:(AU;;FA;;;BA)",
            "D:(A;;FA;;;BA",
            "D:(OA;;FA;;;BA)",
            "D:(A;XX;FA;;;BA)",
            "D:(A;;QQ;;;BA)",
            "D:(A;;FA;x;;BA)",
            "D:AI(A;;FA;;;BA)",
            "O:S-1-5-x",
            "O:éG:BA",
        ] {
            assert!(SecurityDescriptor::parse_sddl(sddl).is_err(), "{sddl}");
        }
        let good = encode(FILE_SDDL);
        for cut in [0, 19, 40, 100, 123] {
            assert!(
                SecurityDescriptor::from_bytes(&good[..cut]).is_err(),
                "{cut}"
            );
        }
        let mut relative = good.clone();
        relative[3] = 0;
        assert!(SecurityDescriptor::from_bytes(&relative).is_err());
    }
}
