//! `--secret` values, read as buildx reads them. Environment variables are
//! read here, in the CLI, and handed to the engine as bytes.

use kiln_backend::SecretSource;
use std::ffi::OsString;
use std::path::PathBuf;

/// Parses `id=ID[,src=PATH|,env=VAR]` (`source=` and `type=file|env` too).
/// Without `src` or `env`, an environment variable named ID is used when
/// set, else a file named ID. `env` looks a variable up.
pub fn parse(
    value: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(String, SecretSource), String> {
    let (mut id, mut src, mut var, mut kind) = (None, None, None, None);
    for field in value.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| format!("--secret {value:?}: expected key=value, got {field:?}"))?;
        match k.trim() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => var = Some(v.to_string()),
            "type" => kind = Some(v.to_string()),
            other => {
                return Err(format!(
                    "--secret {value:?}: unknown key {other:?} (expected id, src, env or type)"
                ))
            }
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("--secret {value:?}: id= is required"))?;
    let from_env = |name: &str| -> Result<SecretSource, String> {
        env(name)
            .map(|v| SecretSource::Value(v.into_encoded_bytes()))
            .ok_or_else(|| {
                format!("--secret {value:?}: the environment variable {name} is not set")
            })
    };
    let source = match (kind.as_deref(), src, var) {
        (_, Some(_), Some(_)) => {
            return Err(format!(
                "--secret {value:?}: give either src= or env=, not both"
            ))
        }
        (Some(t), ..) if t != "env" && t != "file" => {
            return Err(format!(
                "--secret {value:?}: type must be file or env, not {t:?}"
            ))
        }
        (_, None, Some(name)) | (Some("env"), Some(name), None) => from_env(&name)?,
        (_, Some(path), None) => SecretSource::File(PathBuf::from(path)),
        (Some("env"), None, None) => from_env(&id)?,
        (Some(_), None, None) => SecretSource::File(PathBuf::from(&id)),
        (None, None, None) if env(&id).is_some() => from_env(&id)?,
        (None, None, None) => SecretSource::File(PathBuf::from(&id)),
    };
    Ok((id, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<OsString> {
        (name == "TOKEN" || name == "tok").then(|| OsString::from("s3cret"))
    }

    fn p(value: &str) -> Result<(String, SecretSource), String> {
        parse(value, &env)
    }

    #[test]
    fn buildx_rules() {
        let value = || SecretSource::Value(b"s3cret".to_vec());
        assert_eq!(
            p("id=a,src=/f").unwrap(),
            ("a".into(), SecretSource::File("/f".into()))
        );
        assert_eq!(p("id=a,env=TOKEN").unwrap(), ("a".into(), value()));
        assert_eq!(p("id=a,type=env,src=TOKEN").unwrap(), ("a".into(), value()));
        assert_eq!(p("id=tok").unwrap(), ("tok".into(), value()));
        assert_eq!(
            p("id=file").unwrap(),
            ("file".into(), SecretSource::File("file".into()))
        );
        assert_eq!(
            p("id=a,env=MISSING").unwrap_err(),
            "--secret \"id=a,env=MISSING\": the environment variable MISSING is not set"
        );
        assert!(p("id=a,src=x,env=y").is_err());
        assert!(p("src=x").is_err());
        assert!(p("id=a,type=ftp").is_err());
        // Secrets never show in debug output.
        assert_eq!(format!("{:?}", value()), "Value(<6 bytes, redacted>)");
    }
}
