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
pub struct AuthConfig {
    pub api_keys: Vec<ApiKeyConfig>,
    pub jwt: Option<JwtConfig>,
    /// ACL of documents without one [default: `["public"]` without authentication, `[]` (admins
    /// only) with it].
    pub default_acl: Option<Vec<String>>,
}

/// `[[auth.api_keys]]`: one key, stored as its sha256.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
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
pub struct JwtConfig {
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
pub const MAX_LEEWAY_SECS: u64 = 300;

impl AuthConfig {
    /// Whether callers must authenticate: at least one API key or a `[auth.jwt]` section.
    pub fn is_configured(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt.is_some()
    }

    /// The ACL of documents without one: as configured, else public without authentication and
    /// admins only with it (secure by default).
    pub fn default_acl(&self) -> DefaultAcl {
        match &self.default_acl {
            Some(acl) => DefaultAcl(acl.clone()),
            None if self.is_configured() => DefaultAcl::admin_only(),
            None => DefaultAcl::public(),
        }
    }

    /// Checks every key; each message names the key and says how to fix it.
    pub fn validate(&self) -> Result<()> {
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
    pub fn resolve(
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
    pub fn jwks_reload(&self) -> Option<(PathBuf, std::time::Duration)> {
        let path = self.jwks_file.clone()?;
        match self.jwks_reload_secs.unwrap_or(DEFAULT_JWKS_RELOAD_SECS) {
            0 => None,
            secs => Some((path, std::time::Duration::from_secs(secs))),
        }
    }
}

/// Seconds between two checks of `auth.jwt.jwks_file` for changes.
pub const DEFAULT_JWKS_RELOAD_SECS: u64 = 60;

/// The bytes of a JWKS file, at most [`MAX_JWKS_BYTES`](quarry_server::auth::jwks::MAX_JWKS_BYTES).
pub fn read_jwks(path: &std::path::Path) -> Result<Vec<u8>> {
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
    check_principal(&format!("user:{user}"))
        .map_err(|_| anyhow::anyhow!("user {user:?} must be 1 to 256 characters without spaces"))?;
    for g in groups {
        check_principal(&format!("group:{g}")).map_err(|_| {
            anyhow::anyhow!("group {g:?} must be 1 to 256 characters without spaces")
        })?;
    }
    let role = Role::parse(role)
        .map_err(|_| anyhow::anyhow!("role {role:?}: use reader, writer or admin"))?;
    Ok(Principal::new(user, groups.to_vec(), role))
}

#[cfg(test)]
mod tests {
    use crate::config::load;
    use quarry_core::{DefaultAcl, Role};

    /// sha256("abc").
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    /// sha256("").
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn load_toml(text: &str) -> anyhow::Result<crate::config::Config> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("q.toml");
        std::fs::write(&file, text)?;
        load(Some(&file), dir.path(), Vec::new())
    }

    fn err(text: &str) -> String {
        format!("{:#}", load_toml(text).expect_err(text))
    }

    #[test]
    fn keys_jwt_and_the_default_acl() {
        let c = load_toml(&format!(
            "[[auth.api_keys]]\nkey_sha256 = \"{ABC}\"\nuser = \"alice\"\ngroups = [\"eng\"]\nrole = \"writer\"\n\
             [[auth.api_keys]]\nkey_sha256 = \"{}\"\nuser = \"bob\"\n\
             [auth.jwt]\nhs256_secret_env = \"QUARRY_TEST_SECRET\"\nissuer = \"idp\"\n",
            EMPTY.to_uppercase()
        ))
        .unwrap();
        assert!(c.auth.is_configured());
        assert_eq!(c.auth.api_keys[1].role, "reader", "role defaults to reader");
        assert_eq!(c.auth.jwt.as_ref().unwrap().leeway_secs, 30);
        assert_eq!(
            c.auth.default_acl(),
            DefaultAcl::admin_only(),
            "secure by default"
        );

        let env = |v: &str| (v == "QUARRY_TEST_SECRET").then(|| "s".repeat(32));
        let (keys, jwt) = c.auth.resolve(env).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].principal.role, Role::Writer);
        assert_eq!(keys[0].principal.groups, ["eng"]);
        assert_eq!(jwt.unwrap().hs256_secret.unwrap(), b"s".repeat(32));
        let e = format!("{:#}", c.auth.resolve(|_| None).unwrap_err());
        assert!(
            e.contains("QUARRY_TEST_SECRET") && e.contains("not set"),
            "{e}"
        );

        let open = load_toml("").unwrap();
        assert!(!open.auth.is_configured());
        assert_eq!(open.auth.default_acl(), DefaultAcl::public());
        let c = load_toml(&format!(
            "[auth]\ndefault_acl = [\"group:eng\"]\n[[auth.api_keys]]\nkey_sha256 = \"{ABC}\"\nuser = \"a\"\n"
        ))
        .unwrap();
        assert_eq!(c.auth.default_acl(), DefaultAcl(vec!["group:eng".into()]));
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, r#"{"keys": []}"#).unwrap();
        let c = load_toml(&format!("[auth.jwt]\njwks_file = \"{}\"\n", jwks.display())).unwrap();
        let jwt = c.auth.jwt.as_ref().unwrap();
        assert_eq!(
            jwt.jwks_reload(),
            Some((jwks.clone(), std::time::Duration::from_secs(60)))
        );
        let (_, options) = c.auth.resolve(|_| None).unwrap();
        assert_eq!(options.unwrap().jwks_json.unwrap(), br#"{"keys": []}"#);
        std::fs::write(
            &jwks,
            vec![b' '; quarry_server::auth::jwks::MAX_JWKS_BYTES + 1],
        )
        .unwrap();
        let e = format!("{:#}", c.auth.resolve(|_| None).unwrap_err());
        assert!(e.contains("over"), "{e}");
        let c = load_toml(&format!(
            "[auth.jwt]\njwks_file = \"{}\"\njwks_reload_secs = 0\n",
            jwks.display()
        ))
        .unwrap();
        assert_eq!(c.auth.jwt.unwrap().jwks_reload(), None);
        let c =
            load_toml("[auth.jwt]\nrs256_public_key_file = \"/nonexistent/key.pem\"\n").unwrap();
        let e = format!("{:#}", c.auth.resolve(|_| None).unwrap_err());
        assert!(e.contains("/nonexistent/key.pem"), "{e}");
    }

    #[test]
    fn the_secret_variable_is_not_read_as_a_config_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(
            &file,
            "[auth.jwt]\nhs256_secret_env = \"QUARRY_JWT_SECRET\"\n",
        )
        .unwrap();
        let env = vec![("QUARRY_JWT_SECRET".to_owned(), "x".repeat(32))];
        let c = load(Some(&file), dir.path(), env).unwrap();
        assert!(c.auth.is_configured());
    }

    #[test]
    fn bad_auth_settings_say_how_to_fix_them() {
        let key = |extra: &str| {
            format!("[[auth.api_keys]]\nkey_sha256 = \"{ABC}\"\nuser = \"alice\"\n{extra}")
        };
        for (text, want) in [
            (
                "[[auth.api_keys]]\nkey_sha256 = \"abc\"\nuser = \"a\"\n".to_owned(),
                "auth.api_keys[0].key_sha256 must be the sha256",
            ),
            (
                format!(
                    "[[auth.api_keys]]\nkey_sha256 = \"{}\"\nuser = \"a\"\n",
                    ABC.replace('a', "x")
                ),
                "sha256sum",
            ),
            (
                format!("{}{}", key(""), key("")),
                "auth.api_keys[1] has the same key_sha256 as auth.api_keys[0]",
            ),
            (key("role = \"root\"\n"), "reader, writer or admin"),
            (key("groups = [\"a b\"]\n"), "group \"a b\""),
            ("[[auth.api_keys]]\nkey_sha256 = \"x\"\n".to_owned(), "user"),
            (key("key = \"hunter2\"\n"), "unknown field `key`"),
            ("[auth]\nkeys = []\n".to_owned(), "unknown field `keys`"),
            (
                "[auth.jwt]\nissuer = \"idp\"\n".to_owned(),
                "needs hs256_secret_env",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"c2VjcmV0IQ==\"\n".to_owned(),
                "not the secret itself",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"S\"\nleeway_secs = 3600\n".to_owned(),
                "leeway_secs",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"S\"\naudience = \"\"\n".to_owned(),
                "auth.jwt.audience is empty",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"S\"\nalgorithm = \"HS256\"\n".to_owned(),
                "unknown field `algorithm`",
            ),
            (
                "[auth]\ndefault_acl = [\"eng\"]\n".to_owned(),
                "auth.default_acl",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"S\"\nrs256_kid = \"k\"\n".to_owned(),
                "auth.jwt.rs256_kid names the key of auth.jwt.rs256_public_key_file",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"S\"\nhs256_kid = \" \"\n".to_owned(),
                "auth.jwt.hs256_kid is empty",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"S\"\nhs256_kid = \"k\"\nrs256_public_key_file = \"p\"\nrs256_kid = \"k\"\n".to_owned(),
                "must be unique",
            ),
            (
                "[auth.jwt]\nhs256_secret_env = \"S\"\njwks_reload_secs = 5\n".to_owned(),
                "without auth.jwt.jwks_file",
            ),
            (
                "[auth.jwt]\njwks_url = \"https://idp/jwks\"\n".to_owned(),
                "unknown field `jwks_url`",
            ),
        ] {
            let e = err(&text);
            assert!(e.contains(want), "{text}\n=> {e}");
        }
    }
}
