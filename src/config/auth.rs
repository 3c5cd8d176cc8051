//! `[auth]`: API keys (`[[auth.api_keys]]`), JWT verification (`[auth.jwt]`) and the ACL of
//! documents that carry none (`auth.default_acl`). Parsed and checked with the rest of the
//! configuration; [`AuthConfig::resolve`] then reads the secrets (an environment variable, a PEM
//! file, a JWKS file) when the server starts, so commands that do not serve never need them.

use anyhow::{Context, Result, bail};
use quarry_core::acl::check_principal;
use quarry_core::{DefaultAcl, Principal, Role};
use quarry_server::auth::{ApiKey, JwtOptions, keys};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthConfig {
    pub api_keys: Vec<ApiKeyConfig>,
    pub jwt: Option<JwtConfig>,
    /// ACL of documents without one [default: `["public"]` without authentication, `[]` (admins
    /// only) with it].
    pub default_acl: Option<Vec<String>>,
}

/// `[[auth.api_keys]]`: one key, stored as its sha256.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeyConfig {
    /// sha256 of the key, 64 hex characters (`printf %s "$KEY" | sha256sum`).
    pub key_sha256: String,
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// reader, writer or admin [default: reader].
    #[serde(default = "reader")]
    pub role: String,
}

fn reader() -> String {
    "reader".into()
}

/// `[auth.jwt]`: bearer JWTs signed with HS256 and/or RS256, or by the keys of a JWKS file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtConfig {
    /// Name of the environment variable holding the HS256 secret (at least 32 bytes).
    pub hs256_secret_env: Option<String>,
    /// Key id (`kid`) of the HS256 secret, when tokens name it.
    pub hs256_kid: Option<String>,
    /// PEM file of the RSA public key that verifies RS256 tokens.
    pub rs256_public_key_file: Option<PathBuf>,
    /// Key id (`kid`) of the RS256 key, when tokens name it.
    pub rs256_kid: Option<String>,
    /// A JSON Web Key Set file (RFC 7517): keys chosen by the token's `kid`.
    pub jwks_file: Option<PathBuf>,
    /// How often `serve` checks `jwks_file` for changes, in seconds; 0: read at start only
    /// [default: 60].
    pub jwks_reload_secs: Option<u64>,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds [default: 30].
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    30
}

/// Most leeway accepted: more would keep expired tokens alive for long.
pub(super) const MAX_LEEWAY_SECS: u64 = 300;

impl AuthConfig {
    /// Whether callers must authenticate: at least one API key or a `[auth.jwt]` section.
    pub(crate) fn is_configured(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt.is_some()
    }

    /// The ACL of documents without one: as configured, else public without authentication and
    /// admins only with it (secure by default).
    pub(crate) fn default_acl(&self) -> DefaultAcl {
        match &self.default_acl {
            Some(acl) => DefaultAcl(acl.clone()),
            None if self.is_configured() => DefaultAcl::admin_only(),
            None => DefaultAcl::public(),
        }
    }

    /// Checks every key; each message names the key and says how to fix it.
    pub(crate) fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashMap::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            let at = format!("auth.api_keys[{i}]");
            let Some(digest) = keys::parse_digest(&k.key_sha256) else {
                bail!(
                    "{at}.key_sha256 must be the sha256 of the key as 64 hex characters (keys are never stored in clear): compute it with `printf %s \"$KEY\" | sha256sum`"
                );
            };
            if let Some(j) = seen.insert(digest, i) {
                bail!(
                    "{at} has the same key_sha256 as auth.api_keys[{j}]; give every caller its own key"
                );
            }
            principal(&k.user, &k.groups, &k.role).with_context(|| at.clone())?;
        }
        if let Some(jwt) = &self.jwt {
            if jwt.hs256_secret_env.is_none()
                && jwt.rs256_public_key_file.is_none()
                && jwt.jwks_file.is_none()
            {
                bail!(
                    "[auth.jwt] needs hs256_secret_env (the name of an environment variable holding the HS256 secret), rs256_public_key_file (a PEM public key) or jwks_file (a JSON Web Key Set), or several of them"
                );
            }
            for (kid_key, kid, key, has_key) in [
                (
                    "hs256_kid",
                    &jwt.hs256_kid,
                    "hs256_secret_env",
                    jwt.hs256_secret_env.is_some(),
                ),
                (
                    "rs256_kid",
                    &jwt.rs256_kid,
                    "rs256_public_key_file",
                    jwt.rs256_public_key_file.is_some(),
                ),
            ] {
                match kid.as_deref() {
                    Some(k) if k.trim().is_empty() => bail!(
                        "auth.jwt.{kid_key} is empty; remove it or set the key id tokens carry in their `kid` header"
                    ),
                    Some(_) if !has_key => {
                        bail!(
                            "auth.jwt.{kid_key} names the key of auth.jwt.{key}, which is not set"
                        )
                    }
                    _ => {}
                }
            }
            if jwt.hs256_kid.is_some() && jwt.hs256_kid == jwt.rs256_kid {
                bail!(
                    "auth.jwt.hs256_kid and auth.jwt.rs256_kid are the same; key ids must be unique"
                );
            }
            if jwt.jwks_reload_secs.is_some() && jwt.jwks_file.is_none() {
                bail!("auth.jwt.jwks_reload_secs is set without auth.jwt.jwks_file");
            }
            if jwt.hs256_secret_env.as_deref().is_some_and(|v| {
                v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                bail!(
                    "auth.jwt.hs256_secret_env must be the name of an environment variable (letters, digits, `_`), not the secret itself"
                );
            }
            for (key, value) in [("issuer", &jwt.issuer), ("audience", &jwt.audience)] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    bail!("auth.jwt.{key} is empty; remove it or set the expected `{key}` value");
                }
            }
            if jwt.leeway_secs > MAX_LEEWAY_SECS {
                bail!(
                    "auth.jwt.leeway_secs is {}; use 0 to {MAX_LEEWAY_SECS} seconds of clock skew",
                    jwt.leeway_secs
                );
            }
        }
        for p in self.default_acl.iter().flatten() {
            check_principal(p).with_context(|| "auth.default_acl")?;
        }
        Ok(())
    }

    /// The API keys, and the JWT settings with their secrets read: the HS256 secret from its
    /// environment variable (looked up with `env`), the RS256 key from its file.
    pub(crate) fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Vec<ApiKey>, Option<JwtOptions>)> {
        let mut keys = Vec::with_capacity(self.api_keys.len());
        for (i, k) in self.api_keys.iter().enumerate() {
            let p = principal(&k.user, &k.groups, &k.role)
                .with_context(|| format!("auth.api_keys[{i}]"))?;
            let key = ApiKey::from_hex(&k.key_sha256, p).with_context(|| {
                format!("auth.api_keys[{i}].key_sha256 is not 64 hex characters")
            })?;
            keys.push(key);
        }
        let Some(jwt) = &self.jwt else {
            return Ok((keys, None));
        };
        let hs256_secret = match &jwt.hs256_secret_env {
            Some(var) => match env(var) {
                Some(s) if !s.is_empty() => Some(s.into_bytes()),
                _ => bail!(
                    "auth.jwt.hs256_secret_env names {var}, which is not set; export {var} with the HS256 secret (e.g. `export {var}=$(openssl rand -hex 32)`)"
                ),
            },
            None => None,
        };
        let rs256_public_key_pem = match &jwt.rs256_public_key_file {
            Some(path) => Some(std::fs::read(path).with_context(|| {
                format!(
                    "auth.jwt.rs256_public_key_file: cannot read {}",
                    path.display()
                )
            })?),
            None => None,
        };
        let jwks_json = match &jwt.jwks_file {
            Some(path) => Some(read_jwks(path)?),
            None => None,
        };
        Ok((
            keys,
            Some(JwtOptions {
                hs256_secret,
                hs256_kid: jwt.hs256_kid.clone(),
                rs256_public_key_pem,
                rs256_kid: jwt.rs256_kid.clone(),
                jwks_json,
                issuer: jwt.issuer.clone(),
                audience: jwt.audience.clone(),
                leeway_secs: jwt.leeway_secs,
            }),
        ))
    }
}

impl JwtConfig {
    /// How often `serve` re-reads `jwks_file`: `None` without a file or with 0.
    pub(crate) fn jwks_reload(&self) -> Option<(PathBuf, std::time::Duration)> {
        let path = self.jwks_file.clone()?;
        match self.jwks_reload_secs.unwrap_or(DEFAULT_JWKS_RELOAD_SECS) {
            0 => None,
            secs => Some((path, std::time::Duration::from_secs(secs))),
        }
    }
}

/// Seconds between two checks of `auth.jwt.jwks_file` for changes.
pub(super) const DEFAULT_JWKS_RELOAD_SECS: u64 = 60;

/// The bytes of a JWKS file, at most [`MAX_JWKS_BYTES`](quarry_server::auth::jwks::MAX_JWKS_BYTES).
pub(crate) fn read_jwks(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let max = quarry_server::auth::jwks::MAX_JWKS_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut bytes))
        .with_context(|| format!("auth.jwt.jwks_file: cannot read {}", path.display()))?;
    if bytes.len() > max {
        bail!(
            "auth.jwt.jwks_file: {} is over {max} bytes; is it a key set?",
            path.display()
        );
    }
    Ok(bytes)
}

fn principal(user: &str, groups: &[String], role: &str) -> Result<Principal> {
    // The ids are checked before the role, so a bad id is reported first.
    let principal = Principal::checked(user, groups.to_vec(), Role::Reader)?;
    let role = Role::parse(role)
        .map_err(|_| anyhow::anyhow!("role {role:?}: use reader, writer or admin"))?;
    Ok(Principal { role, ..principal })
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
