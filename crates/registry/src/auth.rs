//! Authenticating requests: nothing until the registry challenges, then
//! basic credentials or bearer tokens fetched for each scope and reused.

use crate::challenge::Challenge;
use crate::credentials::Credentials;
use crate::errors::{detail_from_body, ErrorKind};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::collections::HashMap;

/// What authenticating needs of the HTTP client: credentials for a
/// registry and its wording of transport errors. A trait, so this module
/// does not depend on the client that calls it.
pub(crate) trait Transport {
    /// Credentials for `registry`, if any are known.
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, ErrorKind>;
    /// What a transport error talking to `url` for `registry` means.
    fn transport_error(
        &self,
        registry: &str,
        url: &str,
        e: reqwest::Error,
        attempts: u32,
        context: &str,
    ) -> ErrorKind;
}

/// One registry host's side of authenticating: its name, its connection
/// pool and the state of its challenge and tokens.
pub(crate) struct HostAuth<'a> {
    pub(crate) name: &'a str,
    pub(crate) http: &'a reqwest::Client,
    pub(crate) state: &'a tokio::sync::Mutex<AuthState>,
}

/// The actions a request needs on its repositories, for token scopes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Scope(pub(crate) Vec<String>);

impl Scope {
    pub(crate) fn pull(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull")])
    }

    pub(crate) fn push(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull,push")])
    }

    pub(crate) fn none() -> Scope {
        Scope(Vec::new())
    }
}

/// What is known about a registry's authentication.
#[derive(Default)]
pub(crate) struct AuthState {
    challenge: Option<Challenge>,
    /// Looked up once, on the first challenge.
    credentials: Option<Option<Credentials>>,
    tokens: HashMap<Scope, String>,
}

impl AuthState {
    /// Records a challenge from a 401; tokens fetched so far are dropped,
    /// since a 401 means they expired or lack a scope.
    pub(crate) fn learn(&mut self, challenge: Challenge) {
        self.challenge = Some(challenge);
        self.tokens.clear();
    }
}

/// The `Authorization` header for a request needing `scope`, if the
/// registry asked for one.
pub(crate) async fn header(
    client: &impl Transport,
    host: &HostAuth<'_>,
    scope: &Scope,
) -> Result<Option<String>, ErrorKind> {
    let mut state = host.state.lock().await;
    let Some(challenge) = state.challenge.clone() else {
        return Ok(None);
    };
    if state.credentials.is_none() {
        state.credentials = Some(client.credentials(host.name)?);
    }
    let creds = state.credentials.clone().flatten();
    match challenge {
        Challenge::Basic => Ok(creds.map(|c| basic(&c))),
        Challenge::Bearer { realm, service, .. } => {
            if let Some(token) = state.tokens.get(scope) {
                return Ok(Some(format!("Bearer {token}")));
            }
            let token = fetch_token(
                client,
                host,
                &realm,
                service.as_deref(),
                scope,
                creds.as_ref(),
            )
            .await?;
            state.tokens.insert(scope.clone(), token.clone());
            Ok(Some(format!("Bearer {token}")))
        }
    }
}

fn basic(c: &Credentials) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

/// Asks the token server at `realm` for a token covering `scope`.
pub(crate) async fn fetch_token(
    client: &impl Transport,
    host: &HostAuth<'_>,
    realm: &str,
    service: Option<&str>,
    scope: &Scope,
    creds: Option<&Credentials>,
) -> Result<String, ErrorKind> {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = service {
        query.push(("service", s));
    }
    for s in &scope.0 {
        query.push(("scope", s));
    }
    if let Some(c) = creds {
        query.push(("account", &c.username));
    }
    let mut request = host.http.get(realm).query(&query);
    if let Some(c) = creds {
        request = request.header(reqwest::header::AUTHORIZATION, basic(c));
    }
    let resp = request
        .send()
        .await
        .map_err(|e| client.transport_error(host.name, realm, e, 1, "fetching a token: "))?;
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        let detail = String::from_utf8_lossy(&body).trim().to_string();
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": the token server at {realm} said {detail}")
        };
        return Err(ErrorKind::Unauthorized {
            registry: host.name.to_string(),
            detail,
        });
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(ErrorKind::TooManyRequests { attempts: 1 });
    }
    if crate::errors::is_transient_status(status) {
        // Worth retrying, as the same answer from the registry is.
        return Err(ErrorKind::Server {
            status: status.as_u16(),
            attempts: 1,
            detail: format!(
                ": from its token server at {realm}{}",
                detail_from_body(&body)
            ),
        });
    }
    if !status.is_success() {
        return Err(ErrorKind::Invalid(format!(
            "the token server at {realm} answered {status}{}",
            detail_from_body(&body)
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ErrorKind::Invalid(format!(
            "the token server at {realm} sent something that is not JSON: {e}"
        ))
    })?;
    ["token", "access_token"]
        .iter()
        .find_map(|k| {
            value
                .get(*k)
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
        })
        .map(str::to_string)
        .ok_or_else(|| ErrorKind::Invalid(format!("the token server at {realm} sent no token")))
}
