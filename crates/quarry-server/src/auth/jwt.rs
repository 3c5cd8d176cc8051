//! JWT bearer tokens (RFC 7519), signed with HS256 (a shared secret) or RS256 (an RSA key pair;
//! the server holds the public key). Required claims: `sub` (the user) and `exp`; optional
//! `groups` (a list, default empty) and `role` (`reader`, `writer` or `admin`, default `reader`);
//! `iss` and `aud` are required and checked when an issuer or an audience is configured.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use quarry_core::acl::check_principal;
use quarry_core::{Principal, Role};

/// Shortest HS256 secret accepted: 256 bits, the size of the hash (RFC 7518 section 3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// JWT settings, with the key material already read (`[auth.jwt]` in `quarry.toml`).
#[derive(Clone, Default)]
pub struct JwtOptions {
    /// The shared HS256 secret.
    pub hs256_secret: Option<Vec<u8>>,
    /// The RS256 public key, PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub rs256_public_key_pem: Option<Vec<u8>>,
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
            .field("rs256_public_key_pem", &self.rs256_public_key_pem.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// Verifies tokens against the configured keys.
#[derive(Clone)]
pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.algorithms())
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

impl JwtVerifier {
    /// Checks the key material; the error says what is wrong with it.
    pub fn new(options: JwtOptions) -> Result<JwtVerifier, String> {
        if options.hs256_secret.is_none() && options.rs256_public_key_pem.is_none() {
            return Err("JWT verification needs an HS256 secret or an RS256 public key".into());
        }
        let hs256 = match options.hs256_secret {
            Some(s) if s.len() < MIN_HS256_SECRET_BYTES => {
                return Err(format!(
                    "the HS256 secret is {} bytes; use at least {MIN_HS256_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`)",
                    s.len()
                ));
            }
            Some(s) => Some(DecodingKey::from_secret(&s)),
            None => None,
        };
        let rs256 = match options.rs256_public_key_pem {
            Some(pem) => Some(DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                format!("the RS256 public key is not an RSA public key in PEM form ({e}); export it with `openssl rsa -in private.pem -pubout`")
            })?),
            None => None,
        };
        Ok(JwtVerifier {
            hs256,
            rs256,
            issuer: options.issuer,
            audience: options.audience,
            leeway_secs: options.leeway_secs,
        })
    }

    /// The algorithms accepted, e.g. `["HS256", "RS256"]`.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.hs256.is_some() {
            out.push("HS256");
        }
        if self.rs256.is_some() {
            out.push("RS256");
        }
        out
    }

    /// The caller a token names, or why the token is refused (a message for the client).
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| describe(e.kind()))?;
        // The key is chosen by the algorithm, and each key is used with its algorithm only, so
        // an RSA public key can never be used as an HMAC secret.
        let (alg, key) = match header.alg {
            Algorithm::HS256 => (Algorithm::HS256, self.hs256.as_ref()),
            Algorithm::RS256 => (Algorithm::RS256, self.rs256.as_ref()),
            _ => (header.alg, None),
        };
        let Some(key) = key else {
            return Err(format!(
                "invalid JWT: algorithm {:?} is not accepted here; use {}",
                header.alg,
                self.algorithms().join(" or ")
            ));
        };
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_secs;
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
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| describe(e.kind()))?;
        let claims = data.claims;
        check_principal(&format!("user:{}", claims.sub))
            .map_err(|_| "invalid JWT: `sub` must be 1 to 256 characters without spaces")?;
        for g in &claims.groups {
            check_principal(&format!("group:{g}")).map_err(|_| {
                format!("invalid JWT: group {g:?} must be 1 to 256 characters without spaces")
            })?;
        }
        let role = match claims.role.as_deref() {
            None => Role::Reader,
            Some(r) => Role::parse(r).map_err(|_| {
                format!("invalid JWT: `role` {r:?} is not one of reader, writer, admin")
            })?,
        };
        Ok(Principal::new(claims.sub, claims.groups, role))
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
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(looks_like_jwt("a.b."));
        for key in [
            "",
            "qk_0123abcdef",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a..c",
            "a.b+c.d",
            "a b.c.d",
        ] {
            assert!(!looks_like_jwt(key), "{key:?}");
        }
    }

    #[test]
    fn key_material_is_checked() {
        let short = JwtVerifier::new(JwtOptions {
            hs256_secret: Some(b"short".to_vec()),
            ..JwtOptions::default()
        });
        assert!(short.unwrap_err().contains("at least 32"));
        let pem = JwtVerifier::new(JwtOptions {
            rs256_public_key_pem: Some(
                b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".to_vec(),
            ),
            ..JwtOptions::default()
        });
        assert!(pem.unwrap_err().contains("PEM"));
        assert!(JwtVerifier::new(JwtOptions::default()).is_err());
        let ok = JwtVerifier::new(JwtOptions {
            hs256_secret: Some(vec![7; 32]),
            ..JwtOptions::default()
        })
        .unwrap();
        assert_eq!(ok.algorithms(), ["HS256"]);
    }

    fn hs256() -> JwtVerifier {
        JwtVerifier::new(JwtOptions {
            hs256_secret: Some(SECRET.to_vec()),
            issuer: Some("idp".into()),
            leeway_secs: 0,
            ..JwtOptions::default()
        })
        .unwrap()
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn hs256_claims_become_a_principal() {
        let v = hs256();
        let t = sign(
            serde_json::json!({"sub": "alice", "exp": now() + 60, "iss": "idp", "groups": ["eng"], "role": "writer"}),
            SECRET,
        );
        assert!(looks_like_jwt(&t));
        assert_eq!(
            v.verify(&t).unwrap(),
            Principal::new("alice", vec!["eng".into()], Role::Writer)
        );
        let t = sign(
            serde_json::json!({"sub": "bob", "exp": now() + 60, "iss": "idp"}),
            SECRET,
        );
        assert_eq!(
            v.verify(&t).unwrap(),
            Principal::new("bob", vec![], Role::Reader),
            "groups default to none, role to reader"
        );
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let v = hs256();
        let exp = now() + 60;
        for (claims, secret, why) in [
            (
                serde_json::json!({"sub": "a", "exp": now() - 10, "iss": "idp"}),
                SECRET,
                "expired",
            ),
            (
                serde_json::json!({"sub": "a", "exp": exp, "iss": "idp"}),
                &b"another-secret-of-32-bytes-------"[..],
                "signature",
            ),
            (
                serde_json::json!({"exp": exp, "iss": "idp"}),
                SECRET,
                "`sub`",
            ),
            (
                serde_json::json!({"sub": "a", "iss": "idp"}),
                SECRET,
                "`exp`",
            ),
            (serde_json::json!({"sub": "a", "exp": exp}), SECRET, "`iss`"),
            (
                serde_json::json!({"sub": "a", "exp": exp, "iss": "other"}),
                SECRET,
                "issuer",
            ),
            (
                serde_json::json!({"sub": "a", "exp": exp, "iss": "idp", "aud": "elsewhere"}),
                SECRET,
                "audience",
            ),
            (
                serde_json::json!({"sub": "a", "exp": exp, "iss": "idp", "role": "root"}),
                SECRET,
                "`role`",
            ),
            (
                serde_json::json!({"sub": "a b", "exp": exp, "iss": "idp"}),
                SECRET,
                "`sub`",
            ),
            (
                serde_json::json!({"sub": "a", "exp": exp, "iss": "idp", "groups": "eng"}),
                SECRET,
                "JSON",
            ),
        ] {
            let err = v.verify(&sign(claims.clone(), secret)).unwrap_err();
            assert!(err.contains(why), "{claims}: {err}");
        }
        // An RS256 header with no RSA key configured, and a token with alg none.
        let rs = format!(
            "eyJhbGciOiJSUzI1NiJ9.{}",
            sign(serde_json::json!({"sub": "a", "exp": exp}), SECRET)
                .split_once('.')
                .unwrap()
                .1
        );
        assert!(v.verify(&rs).unwrap_err().contains("RS256"));
        let none = format!("eyJhbGciOiJub25lIn0.{}", rs.split_once('.').unwrap().1);
        assert!(v.verify(&none).is_err());
        assert!(v.verify("a.b.c").unwrap_err().contains("malformed"));
    }

    #[test]
    fn audience_is_required_when_configured() {
        let v = JwtVerifier::new(JwtOptions {
            hs256_secret: Some(SECRET.to_vec()),
            audience: Some("quarry".into()),
            ..JwtOptions::default()
        })
        .unwrap();
        let exp = now() + 60;
        let ok = sign(
            serde_json::json!({"sub": "a", "exp": exp, "aud": "quarry"}),
            SECRET,
        );
        assert!(v.verify(&ok).is_ok());
        let missing = sign(serde_json::json!({"sub": "a", "exp": exp}), SECRET);
        assert!(v.verify(&missing).unwrap_err().contains("`aud`"));
        let wrong = sign(
            serde_json::json!({"sub": "a", "exp": exp, "aud": "other"}),
            SECRET,
        );
        assert!(v.verify(&wrong).unwrap_err().contains("audience"));
    }
}
