//! Checking credentials against a registry before storing them.

use crate::auth::fetch_token;
use crate::challenge::Challenge;
use crate::client::{status_error, Client, Scope};
use crate::credentials::Credentials;
use crate::errors::{Error, ErrorKind, Result, Target};
use reqwest::StatusCode;

const ACTION: &str = "logging in to";

impl Client {
    /// Checks that `creds` are accepted by `registry`: a basic-auth request
    /// to `/v2/`, or a token request to the realm it names. Succeeds without
    /// checking when the registry asks for no authentication at all.
    pub async fn login(&self, registry: &str, creds: &Credentials) -> Result<()> {
        let target = Target {
            registry: registry.to_string(),
            repository: String::new(),
            reference: String::new(),
        };
        let err = |kind| Error {
            action: ACTION,
            target: Box::new(target.clone()),
            kind,
        };
        let host = self.host(&target.registry, &target, ACTION)?;
        let base = self.base(&host, &target, ACTION).await?;
        let url = format!("{base}/v2/");
        let ping = host
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.fail(ACTION, &target, &url, e, 1))?;
        if ping.status() != StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        let challenge = ping
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Challenge::parse);
        match challenge {
            Some(Challenge::Bearer { realm, service, .. }) => {
                fetch_token(
                    self,
                    &host.auth(),
                    &realm,
                    service.as_deref(),
                    &Scope::none(),
                    Some(creds),
                )
                .await
                .map_err(err)?;
                Ok(())
            }
            Some(Challenge::Basic) | None => {
                let resp = host
                    .http
                    .get(&url)
                    .basic_auth(&creds.username, Some(&creds.password))
                    .send()
                    .await
                    .map_err(|e| self.fail(ACTION, &target, &url, e, 1))?;
                match resp.status() {
                    StatusCode::OK => Ok(()),
                    StatusCode::UNAUTHORIZED => Err(err(ErrorKind::Unauthorized {
                        registry: registry.to_string(),
                        detail: ": the user name or password is wrong".into(),
                    })),
                    _ => Err(err(status_error(
                        resp,
                        "the /v2/ endpoint",
                        self.opts.timeout,
                    )
                    .await)),
                }
            }
        }
    }
}
