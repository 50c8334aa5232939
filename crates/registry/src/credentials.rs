//! Credentials the way docker and podman keep them: `auths` in
//! `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`), containers'
//! `auth.json` (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`), and `docker-credential-*` helpers
//! named by `credHelpers` (per registry) or `credsStore` (for all).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A user name and password (or token used as one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// Where credentials are read from and written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFiles {
    /// Files read, first match wins.
    pub read: Vec<PathBuf>,
    /// The file `login` and `logout` change.
    pub write: PathBuf,
}

/// The key docker uses for Docker Hub in `auths` and with helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

impl AuthFiles {
    /// The files docker and podman use, from the values of the variables
    /// that move them (the caller reads its environment; this crate reads
    /// none): `registry_auth_file` (`$REGISTRY_AUTH_FILE`) alone when set,
    /// else `$DOCKER_CONFIG/config.json` (default `~/.docker`), then
    /// `$XDG_RUNTIME_DIR/containers/auth.json` and
    /// `~/.config/containers/auth.json`.
    pub fn docker_and_containers(
        home: &Path,
        docker_config: Option<PathBuf>,
        xdg_runtime_dir: Option<PathBuf>,
        registry_auth_file: Option<PathBuf>,
    ) -> AuthFiles {
        if let Some(file) = registry_auth_file {
            return AuthFiles {
                read: vec![file.clone()],
                write: file,
            };
        }
        let docker = docker_config
            .unwrap_or_else(|| home.join(".docker"))
            .join("config.json");
        let mut read = vec![docker.clone()];
        if let Some(runtime) = xdg_runtime_dir {
            read.push(runtime.join("containers/auth.json"));
        }
        read.push(home.join(".config/containers/auth.json"));
        AuthFiles {
            read,
            write: docker,
        }
    }

    /// The credentials for `registry` (`host[:port]`), if any are configured.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, String> {
        for path in &self.read {
            let Some(config) = read_config(path)? else {
                continue;
            };
            if let Some(helper) = helper_for(&config, registry) {
                return helper_get(&helper, &server_url(registry));
            }
            if let Some(creds) = from_auths(&config, registry, path)? {
                return Ok(Some(creds));
            }
        }
        Ok(None)
    }

    /// Saves `creds` for `registry`: through the credential helper if one is
    /// configured, else base64 in `auths` of [`AuthFiles::write`].
    /// Returns where they went, for the user.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<String, String> {
        let mut config = read_config(&self.write)?.unwrap_or_else(|| json!({}));
        if let Some(helper) = helper_for(&config, registry) {
            helper_run(
                &helper,
                "store",
                &json!({"ServerURL": server_url(registry), "Username": creds.username, "Secret": creds.password})
                    .to_string(),
            )?;
            return Ok(format!("docker-credential-{helper}"));
        }
        let auths = object(&mut config, "auths");
        auths.retain(|k, _| normalise_key(k) != registry);
        let auth = STANDARD.encode(format!("{}:{}", creds.username, creds.password));
        auths.insert(key_for(registry), json!({ "auth": auth }));
        write_config(&self.write, &config)?;
        Ok(self.write.display().to_string())
    }

    /// Removes the credentials for `registry`; false if there were none.
    pub fn erase(&self, registry: &str) -> Result<bool, String> {
        let Some(mut config) = read_config(&self.write)? else {
            return Ok(false);
        };
        if let Some(helper) = helper_for(&config, registry) {
            helper_run(&helper, "erase", &server_url(registry))?;
            return Ok(true);
        }
        let auths = object(&mut config, "auths");
        let before = auths.len();
        auths.retain(|k, _| normalise_key(k) != registry);
        if auths.len() == before {
            return Ok(false);
        }
        write_config(&self.write, &config)?;
        Ok(true)
    }
}

/// The key docker writes for a registry.
fn key_for(registry: &str) -> String {
    if registry == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// What credential helpers are asked about.
fn server_url(registry: &str) -> String {
    key_for(registry)
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://h:5000/v2/` → `h:5000`.
fn normalise_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

fn helper_for(config: &Value, registry: &str) -> Option<String> {
    let helpers = config.get("credHelpers").and_then(|h| h.as_object());
    let per_registry = helpers.and_then(|h| {
        h.iter()
            .find(|(k, _)| normalise_key(k) == registry)
            .and_then(|(_, v)| v.as_str())
    });
    per_registry
        .or_else(|| config.get("credsStore").and_then(|s| s.as_str()))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn from_auths(config: &Value, registry: &str, path: &Path) -> Result<Option<Credentials>, String> {
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let Some((_, entry)) = auths.iter().find(|(k, _)| normalise_key(k) == registry) else {
        return Ok(None);
    };
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or("");
    if !field("auth").is_empty() {
        let bad = || {
            format!("{}: the `auth` entry for {registry} is not base64 of user:password; run `kiln login {registry}` again", path.display())
        };
        let decoded = STANDARD.decode(field("auth").trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: password.to_string(),
        }));
    }
    if !field("username").is_empty() {
        return Ok(Some(Credentials {
            username: field("username").to_string(),
            password: field("password").to_string(),
        }));
    }
    if !field("identitytoken").is_empty() {
        return Err(format!(
            "{}: the entry for {registry} holds an identity token, which kiln does not support; \
             run `kiln login {registry}` with a user name and password or access token",
            path.display()
        ));
    }
    Ok(None)
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>, String> {
    let out = helper_run(helper, "get", server);
    let out = match out {
        Ok(out) => out,
        Err(e) if e.contains("credentials not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    let value: Value = serde_json::from_str(&out).map_err(|e| {
        format!(
            "docker-credential-{helper} get printed something that is not JSON credentials: {e}"
        )
    })?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    if field("Username").is_empty() && field("Secret").is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: field("Username"),
        password: field("Secret"),
    }))
}

fn helper_run(helper: &str, action: &str, input: &str) -> Result<String, String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("running {program} {action}: {e}; install it or remove it from credsStore/credHelpers in your docker config")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("writing to {program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running {program} {action}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let said = if stdout.is_empty() { stderr } else { stdout };
        return Err(format!("{program} {action} failed: {said}"));
    }
    Ok(stdout)
}

fn read_config(path: &Path) -> Result<Option<Value>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Some(json!({})));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{} is not valid JSON: {e}; fix or remove it",
            path.display()
        )
    })?;
    if !value.is_object() {
        return Err(format!(
            "{} is not a JSON object; fix or remove it",
            path.display()
        ));
    }
    Ok(Some(value))
}

fn object<'a>(config: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let root = config
        .as_object_mut()
        .expect("read_config only returns objects");
    let entry = root.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("just made an object")
}

/// Writes `config` with mode 0600 (on Windows, the ACL of its directory:
/// see `sys`) by rename, so a crash never leaves half a file.
fn write_config(path: &Path, config: &Value) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::sys::create_private_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{}.kiln-tmp", std::process::id()));
    let mut text = serde_json::to_string_pretty(config).expect("JSON values always serialise");
    text.push('\n');
    let write = || -> std::io::Result<()> {
        let mut f = crate::sys::create_private_file(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> AuthFiles {
        AuthFiles {
            read: vec![dir.join("config.json")],
            write: dir.join("config.json"),
        }
    }

    #[test]
    fn store_lookup_erase_round_trip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"psFormat":"table","auths":{"https://other:1/v1/":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        let f = files(dir.path());
        let creds = Credentials {
            username: "alice".into(),
            password: "s3cret:with:colons".into(),
        };
        assert_eq!(
            f.store("r.example:5000", &creds).unwrap(),
            path.display().to_string()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["psFormat"], "table");
        assert_eq!(
            value["auths"]["r.example:5000"]["auth"],
            STANDARD.encode("alice:s3cret:with:colons")
        );
        assert_eq!(f.lookup("r.example:5000").unwrap(), Some(creds));
        assert_eq!(
            f.lookup("other:1").unwrap(),
            Some(Credentials {
                username: "x".into(),
                password: "y".into()
            })
        );
        assert!(f.erase("r.example:5000").unwrap());
        assert!(!f.erase("r.example:5000").unwrap());
        assert_eq!(f.lookup("r.example:5000").unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn docker_hub_uses_the_v1_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        f.store("docker.io", &creds).unwrap();
        let value: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert!(value["auths"][DOCKER_HUB_KEY].is_object());
        assert_eq!(f.lookup("docker.io").unwrap(), Some(creds));
    }

    #[test]
    fn bad_files_say_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = files(dir.path()).lookup("x").unwrap_err();
        assert!(
            err.starts_with(&format!("{} is not valid JSON", path.display())),
            "{err}"
        );
        std::fs::write(&path, r#"{"auths":{"x":{"auth":"!!"}}}"#).unwrap();
        let err = files(dir.path()).lookup("x").unwrap_err();
        assert!(
            err.ends_with("is not base64 of user:password; run `kiln login x` again"),
            "{err}"
        );
    }
}
