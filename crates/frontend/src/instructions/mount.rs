//! `RUN --mount=…` specifications, read as BuildKit's `parseMount` does:
//! a CSV record of `key=value` fields (plus bare `ro`, `rw`, `required`).

use std::fmt;

use super::suggest::closest;

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// A directory from the build context or from `from=` (the default).
    Bind,
    /// A persistent cache directory shared between builds.
    Cache,
    /// An empty in-memory file system.
    Tmpfs,
    /// A secret file (or environment variable with `env=`).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    const ALL: [&'static str; 5] = ["bind", "cache", "tmpfs", "secret", "ssh"];

    /// The name used in Dockerfiles.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// How builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Many writers at once (the default).
    Shared,
    /// Each writer gets its own copy.
    Private,
    /// Writers take turns.
    Locked,
}

impl Sharing {
    fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }
    }
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=`.
    pub kind: MountType,
    /// `target=`, `dst=` or `destination=`; empty when not given.
    pub target: String,
    /// `source=` or `src=`; empty when not given.
    pub source: String,
    /// `from=`: a stage name or an image; empty for the build context.
    pub from: String,
    /// `ro`/`readonly`/`rw`/`readwrite`; when none is given, bind, secret
    /// and ssh mounts are read-only and cache and tmpfs are writable.
    pub read_only: bool,
    /// `id=`: cache id, secret id or ssh id.
    pub id: String,
    /// `sharing=` (cache mounts only).
    pub sharing: Option<Sharing>,
    /// `mode=`, octal (cache, secret and ssh mounts only).
    pub mode: Option<u32>,
    /// `uid=` (cache, secret and ssh mounts only).
    pub uid: Option<u32>,
    /// `gid=` (cache, secret and ssh mounts only).
    pub gid: Option<u32>,
    /// `required` (secret and ssh mounts only).
    pub required: bool,
    /// `env=`: expose the secret as this environment variable (secrets only).
    pub env: Option<String>,
    /// `size=` in bytes (tmpfs only).
    pub size: Option<u64>,
}

impl fmt::Display for Mount {
    /// Prints the mount in a canonical `key=value` order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type={}", self.kind.as_str())?;
        let fields: [(&str, &str); 4] = [
            ("from", &self.from),
            ("source", &self.source),
            ("target", &self.target),
            ("id", &self.id),
        ];
        for (k, v) in fields {
            if !v.is_empty() {
                write!(f, ",{k}={v}")?;
            }
        }
        if let Some(s) = self.sharing {
            write!(f, ",sharing={}", s.as_str())?;
        }
        if let Some(m) = self.mode {
            write!(f, ",mode={m:o}")?;
        }
        if let Some(u) = self.uid {
            write!(f, ",uid={u}")?;
        }
        if let Some(g) = self.gid {
            write!(f, ",gid={g}")?;
        }
        if let Some(e) = &self.env {
            write!(f, ",env={e}")?;
        }
        if let Some(s) = self.size {
            write!(f, ",size={s}")?;
        }
        if self.required {
            f.write_str(",required")?;
        }
        f.write_str(if self.read_only { ",ro" } else { ",rw" })
    }
}

/// Expands one option value; `Err` carries the message.
pub(crate) type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parses a `--mount` value. `expand` is applied to every value before it
/// is interpreted, as BuildKit does when it dispatches the RUN.
pub(crate) fn parse_mount(spec: &str, expand: Expander<'_>) -> Result<Mount, String> {
    let fields = csv_fields(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = Mount {
        kind: MountType::Bind,
        target: String::new(),
        source: String::new(),
        from: String::new(),
        read_only: false,
        id: String::new(),
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        env: None,
        size: None,
    };
    let mut ro_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true
                }
                "required" => return Err(unexpected(&key, m.kind)),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let value = expand(value)?;
        let parse_bool =
            |v: &str| parse_go_bool(v).ok_or_else(|| format!("invalid value for {key}: {v}"));
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let mut msg = format!("unsupported mount type {value:?}");
                        if let Some(s) = closest(&value, &MountType::ALL, true) {
                            msg.push_str(&format!(" (did you mean {s}?)"));
                        }
                        return Err(msg);
                    }
                }
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.read_only = parse_bool(&value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_bool(&value)?;
                ro_auto = false;
            }
            "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                m.required = parse_bool(&value)?
            }
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| format!("invalid value for size: {value}"))?,
                )
            }
            "env" if m.kind == MountType::Secret => m.env = Some(value),
            "required" | "size" | "env" => return Err(unexpected(&key, m.kind)),
            "id" => m.id = value,
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "unsupported sharing value {value:?} (use shared, private or locked)"
                        ))
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            _ => {
                const KEYS: [&str; 19] = [
                    "type",
                    "from",
                    "source",
                    "target",
                    "readonly",
                    "id",
                    "sharing",
                    "required",
                    "mode",
                    "uid",
                    "gid",
                    "src",
                    "dst",
                    "destination",
                    "ro",
                    "rw",
                    "readwrite",
                    "size",
                    "env",
                ];
                let mut msg = format!("unexpected key '{key}' in '{field}'");
                if let Some(s) = closest(&key, &KEYS, true) {
                    msg.push_str(&format!(" (did you mean {s}?)"));
                }
                return Err(msg);
            }
        }
    }
    validate(&mut m, ro_auto)?;
    Ok(m)
}

fn unexpected(key: &str, kind: MountType) -> String {
    format!("unexpected key '{key}' for mount type '{}'", kind.as_str())
}

fn validate(m: &mut Mount, ro_auto: bool) -> Result<(), String> {
    if !matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    ) {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.as_str()
                ));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() && m.env.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        ));
    }
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1.5g`, `512KiB`, `100` (bytes),
/// with binary multipliers.
fn ram_in_bytes(v: &str) -> Option<u64> {
    let lower = v.to_ascii_lowercase();
    let num_len = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let number: f64 = lower[..num_len].parse().ok()?;
    let unit = lower[num_len..].trim_start_matches(' ');
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    Some((number * 1024f64.powi(power)) as u64)
}

/// Splits one CSV record as Go's `encoding/csv` does (no space trimming,
/// `"…"` fields with `""` for a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(_) => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in non-quoted-field".into()),
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Result<String, String> {
        Ok(s.to_string())
    }

    #[test]
    fn csv_and_sizes() {
        assert_eq!(csv_fields("a,\"b,c\",d").unwrap(), ["a", "b,c", "d"]);
        assert_eq!(
            csv_fields("x=\"\"\"\"").unwrap_err(),
            "bare \" in non-quoted-field"
        );
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Some(3 << 29));
        assert_eq!(ram_in_bytes("512KiB"), Some(512 << 10));
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("lots"), None);
    }

    #[test]
    fn defaults_and_display() {
        let m = parse_mount("target=/src", &lit).unwrap();
        assert_eq!(m.to_string(), "type=bind,target=/src,ro");
        let m = parse_mount(
            "type=cache,target=/root/.cache,sharing=locked,mode=0755,uid=1,gid=2",
            &lit,
        )
        .unwrap();
        assert_eq!(
            m.to_string(),
            "type=cache,target=/root/.cache,sharing=locked,mode=755,uid=1,gid=2,rw"
        );
        let m = parse_mount("type=tmpfs,dst=/t,size=1m", &lit).unwrap();
        assert_eq!(m.size, Some(1 << 20));
        let m = parse_mount("type=secret,id=tok,env=TOKEN,required", &lit).unwrap();
        assert_eq!(m.to_string(), "type=secret,id=tok,env=TOKEN,required,ro");
    }
}
