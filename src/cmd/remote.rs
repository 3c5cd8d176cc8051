//! A client of a running `quarry serve`: `--server URL` with `--token` (or `QUARRY_TOKEN`) sent as
//! `Authorization: Bearer`. A 401 or 403 becomes an error that says what to do about it.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};

/// `--server` and `--token`, shared by the commands that can talk to a server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Ask a running server (e.g. http://127.0.0.1:7878) instead of opening the data dir.
    #[arg(long, value_name = "URL", value_parser = parse_server_url)]
    pub server: Option<String>,
    /// API key or JWT for a server with authentication (sent as `Authorization: Bearer`).
    #[arg(long, env = "QUARRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `--server`: an http:// or https:// URL. `127.0.0.1:7878` alone is refused with the fix, since
/// the HTTP client would read it as a relative URL and fail to connect with a puzzling message.
pub(crate) fn parse_server_url(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(s.to_owned());
    }
    if s.contains("://") {
        return Err(format!("{s}: use an http:// or https:// URL"));
    }
    Err(format!(
        "{s} has no scheme; add http:// (or https://): --server http://{s}"
    ))
}

impl ServerArgs {
    /// The server to ask, if `--server` was given.
    pub fn remote(&self) -> Option<Remote> {
        self.server
            .as_deref()
            .map(|url| Remote::new(url, self.token.clone()))
    }
}

/// One server, one token, one connection pool.
pub struct Remote {
    base: String,
    token: Option<String>,
    client: Client,
}

impl Remote {
    pub fn new(url: &str, token: Option<String>) -> Remote {
        Remote {
            base: url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            client: Client::new(),
        }
    }

    pub fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(path, self.client.get(self.url(path)))
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        self.send(path, self.client.post(self.url(path)).json(body))
    }

    /// What the server says its collections are (those the token may list), for the error
    /// of a collection it did not find; `None` when it cannot say.
    fn collection_names(&self) -> Option<String> {
        let answer = self.get("/v1/collections").ok()?;
        let names: Vec<&str> = answer["collections"]
            .as_array()?
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        Some(if names.is_empty() {
            "the server has no collection yet".to_owned()
        } else {
            format!("the collections there are: {}", names.join(", "))
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, path: &str, req: RequestBuilder) -> anyhow::Result<serde_json::Value> {
        let endpoint = self.url(path);
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().with_context(|| {
            format!("cannot reach {endpoint}; is `quarry serve` running there?")
        })?;
        let status = resp.status();
        let value: serde_json::Value = resp
            .json()
            .with_context(|| format!("{endpoint} answered {status} without JSON"))?;
        if status.is_success() {
            return Ok(value);
        }
        let message = value["error"]["message"].as_str().unwrap_or("(no message)");
        if value["error"]["code"] == "collection_not_found"
            && let Some(names) = self.collection_names()
        {
            bail!(
                "server answered {status}: {message}; {names} (quarry status --server {})",
                self.base
            );
        }
        match status {
            StatusCode::UNAUTHORIZED if self.token.is_none() => bail!(
                "{} requires authentication ({message}); pass an API key or a JWT with --token or QUARRY_TOKEN",
                self.base
            ),
            StatusCode::UNAUTHORIZED => bail!(
                "{} refused the token ({message}); check --token or QUARRY_TOKEN",
                self.base
            ),
            StatusCode::FORBIDDEN => bail!(
                "{} refused the request: {message}; ask its operator for a token with that role",
                self.base
            ),
            // the request's own values: exit 2, as for a bad flag
            StatusCode::BAD_REQUEST => {
                Err(super::UsageError(format!("server answered {status}: {message}")).into())
            }
            _ => bail!("server answered {status}: {message}"),
        }
    }
}
