//! JWT bearer tokens (RFC 7519), signed with HS256 (a shared secret), RS256 (an RSA key pair; the
//! server holds the public key), or by a key of a JSON Web Key Set ([`super::jwks`]). Required
//! claims: `sub` (the user) and `exp`; optional `groups` (a list, default empty) and `role`
//! (`reader`, `writer` or `admin`, default `reader`); `iss` and `aud` are required and checked when
//! an issuer or an audience is configured. `exp` and `nbf` are checked with the configured leeway.
//!
//! Choosing the key ([`JwtVerifier::verify`]): a token whose header has a `kid` is verified by the
//! configured key with that `kid` only (none: 401 `unknown key id`). A token without a `kid` is
//! verified by the one key configured without a `kid` for its header's algorithm (the single-key
//! settings, `hs256_secret_env` and `rs256_public_key_file`, when they have no `hs256_kid` /
//! `rs256_kid`). When no configured key has a `kid` at all, a token's `kid` is not looked at, as
//! before key ids existed. No token is ever tried against several keys. The algorithm is the
//! key's: a header naming another is refused, so an RSA public key is never used as an HMAC secret.

use super::jwks::{self, VerifyKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use quarry_core::{Principal, Role};
use std::sync::{Arc, RwLock};

/// Shortest HS256 secret accepted: 256 bits, the size of the hash (RFC 7518 section 3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// JWT settings, with the key material already read (`[auth.jwt]` in `quarry.toml`).
#[derive(Clone, Default)]
pub struct JwtOptions {
    /// The shared HS256 secret.
    pub hs256_secret: Option<Vec<u8>>,
    /// The key id of the HS256 secret, if tokens name it.
    pub hs256_kid: Option<String>,
    /// The RS256 public key, PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub rs256_public_key_pem: Option<Vec<u8>>,
    /// The key id of the RS256 key, if tokens name it.
    pub rs256_kid: Option<String>,
    /// A JSON Web Key Set (RFC 7517), as read from `jwks_file`; replaced by
    /// [`JwtVerifier::reload_jwks`].
    pub jwks_json: Option<Vec<u8>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
}

impl std::fmt::Debug for JwtOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs and panics.
        f.debug_struct("JwtOptions")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("hs256_kid", &self.hs256_kid)
            .field("rs256_public_key_pem", &self.rs256_public_key_pem.is_some())
            .field("rs256_kid", &self.rs256_kid)
            .field("jwks_json", &self.jwks_json.as_ref().map(|_| "<redacted>"))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// Verifies tokens against the configured keys. Clones share the key set, so a reload of the
/// JWKS is seen by every clone.
#[derive(Clone)]
pub struct JwtVerifier {
    /// Keys of the single-key settings; fixed for the life of the server.
    fixed: Vec<VerifyKey>,
    /// Keys of the JWKS, if one is configured; replaced whole by a reload.
    jwks: Option<Arc<RwLock<Arc<Vec<VerifyKey>>>>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.algorithms())
            .field("key_ids", &self.key_ids())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    role: Option<String>,
}

/// Algorithms in the order they are listed.
const ORDER: [Algorithm; 9] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl JwtVerifier {
    /// Checks the key material; the error says what is wrong with it.
    pub fn new(options: JwtOptions) -> Result<JwtVerifier, String> {
        if options.hs256_secret.is_none()
            && options.rs256_public_key_pem.is_none()
            && options.jwks_json.is_none()
        {
            return Err(
                "JWT verification needs an HS256 secret, an RS256 public key or a JWKS".into(),
            );
        }
        for (name, kid) in [
            ("hs256_kid", &options.hs256_kid),
            ("rs256_kid", &options.rs256_kid),
        ] {
            if kid.as_deref().is_some_and(str::is_empty) {
                return Err(format!("{name} is empty; remove it or name the key"));
            }
        }
        let mut fixed = Vec::new();
        match options.hs256_secret {
            Some(s) if s.len() < MIN_HS256_SECRET_BYTES => {
                return Err(format!(
                    "the HS256 secret is {} bytes; use at least {MIN_HS256_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`)",
                    s.len()
                ));
            }
            Some(s) => fixed.push(VerifyKey {
                kid: options.hs256_kid,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(&s),
            }),
            None => {}
        }
        if let Some(pem) = options.rs256_public_key_pem {
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                format!("the RS256 public key is not an RSA public key in PEM form ({e}); export it with `openssl rsa -in private.pem -pubout`")
            })?;
            fixed.push(VerifyKey {
                kid: options.rs256_kid,
                alg: Algorithm::RS256,
                key,
            });
        }
        if let [a, b] = &fixed[..]
            && a.kid.is_some()
            && a.kid == b.kid
        {
            return Err("hs256_kid and rs256_kid are the same; key ids must be unique".into());
        }
        let mut verifier = JwtVerifier {
            fixed,
            jwks: None,
            issuer: options.issuer,
            audience: options.audience,
            leeway_secs: options.leeway_secs,
        };
        if let Some(json) = options.jwks_json {
            verifier.jwks = Some(Arc::new(RwLock::new(Arc::new(Vec::new()))));
            verifier.reload_jwks(&json)?;
        }
        Ok(verifier)
    }

    /// Replaces the keys of the JWKS with those of `json`, and says how many there are. On an
    /// error the keys in use stay. Tokens verified after the return use the new keys.
    pub fn reload_jwks(&self, json: &[u8]) -> Result<usize, String> {
        let Some(slot) = &self.jwks else {
            return Err("no JWKS is configured".into());
        };
        let keys = jwks::parse(json).map_err(|e| format!("JWKS: {e}"))?;
        for k in &keys {
            if self.fixed.iter().any(|f| f.kid.is_some() && f.kid == k.kid) {
                return Err(format!(
                    "JWKS: kid {:?} is also the hs256_kid or rs256_kid; key ids must be unique",
                    k.kid.as_deref().unwrap_or_default()
                ));
            }
        }
        let n = keys.len();
        *slot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// Whether a JWKS is configured (and can be reloaded).
    pub fn has_jwks(&self) -> bool {
        self.jwks.is_some()
    }

    /// Every key in use: the fixed ones, then the JWKS's.
    fn keys(&self) -> Vec<VerifyKey> {
        let mut all = self.fixed.clone();
        if let Some(slot) = &self.jwks {
            let set = slot.read().unwrap_or_else(|e| e.into_inner()).clone();
            all.extend(set.iter().cloned());
        }
        all
    }

    /// The algorithms accepted, e.g. `["HS256", "RS256"]`.
    pub fn algorithms(&self) -> Vec<String> {
        let keys = self.keys();
        ORDER
            .iter()
            .filter(|a| keys.iter().any(|k| k.alg == **a))
            .map(|a| format!("{a:?}"))
            .collect()
    }

    /// The key ids configured, in configuration order.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys().into_iter().filter_map(|k| k.kid).collect()
    }

    /// For the start-up line: `HS256, RS256`, or `RS256; key ids a, b`.
    pub fn describe(&self) -> String {
        let algs = self.algorithms().join(", ");
        let kids = self.key_ids();
        if kids.is_empty() {
            algs
        } else {
            format!("{algs}; key ids {}", kids.join(", "))
        }
    }

    /// The key `header` is verified with (see the module doc), or why there is none.
    fn select(&self, header: &jsonwebtoken::Header) -> Result<VerifyKey, String> {
        let keys = self.keys();
        let any_kid = keys.iter().any(|k| k.kid.is_some());
        let key = match &header.kid {
            Some(kid) if any_kid => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or("invalid JWT: unknown key id (`kid`)")?,
            _ => match keys.iter().find(|k| k.kid.is_none() && k.alg == header.alg) {
                Some(k) => k,
                None if keys.iter().any(|k| k.alg == header.alg) => {
                    return Err(format!(
                        "invalid JWT: the token has no key id (`kid`), and every {:?} key of this server has one",
                        header.alg
                    ));
                }
                None => {
                    return Err(format!(
                        "invalid JWT: algorithm {:?} is not accepted here; use {}",
                        header.alg,
                        self.algorithms().join(" or ")
                    ));
                }
            },
        };
        if key.alg != header.alg {
            return Err(describe(&ErrorKind::InvalidAlgorithm));
        }
        Ok(key.clone())
    }

    /// The caller a token names, or why the token is refused (a message for the client).
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| describe(e.kind()))?;
        let key = self.select(&header)?;
        // The algorithm is the key's: each key verifies with its own algorithm only.
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        // Without a configured audience, a token that names one is refused (RFC 7519 4.1.3: it
        // is meant for someone else); jsonwebtoken does that when no audience is set.
        if let Some(aud) = &self.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| describe(e.kind()))?;
        let claims = data.claims;
        // The ids are checked before the role, so a bad id is reported first.
        let principal =
            Principal::checked(claims.sub, claims.groups, Role::Reader).map_err(|b| {
                match b.field {
                    "user" => {
                        "invalid JWT: `sub` must be 1 to 256 characters without spaces".to_owned()
                    }
                    _ => format!("invalid JWT: {b}"),
                }
            })?;
        let role = match claims.role.as_deref() {
            None => Role::Reader,
            Some(r) => Role::parse(r).map_err(|_| {
                format!("invalid JWT: `role` {r:?} is not one of reader, writer, admin")
            })?,
        };
        Ok(Principal { role, ..principal })
    }
}

/// Whether `token` has the shape of a JWT: three dot-separated base64url parts, the first two
/// non-empty. Anything else is an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && token
            .bytes()
            .all(|b| b == b'.' || b == b'-' || b == b'_' || b.is_ascii_alphanumeric())
}

/// A client-facing reason, without anything of the token or the key.
fn describe(kind: &ErrorKind) -> String {
    let why = match kind {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer (`iss`)".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience (`aud`)".to_owned(),
        ErrorKind::InvalidAlgorithm => "the algorithm does not match the key".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("the claim `{c}` is missing"),
        ErrorKind::InvalidClaimFormat(c) => format!("the claim `{c}` has the wrong type"),
        ErrorKind::Json(_) => "the claims are not the expected JSON (`sub` a string, `groups` a list of strings, `role` a string)".to_owned(),
        _ => "malformed token".to_owned(),
    };
    format!("invalid JWT: {why}")
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
