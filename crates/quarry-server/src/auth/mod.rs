//! Authentication and authorization. [`Auth`] turns the `Authorization: Bearer <token>` header into
//! a [`Principal`]: a token with the shape of a JWT is verified as one ([`jwt`], with keys chosen by
//! `kid`, some from a JSON Web Key Set: [`jwks`]), any other token is
//! an API key looked up by its sha256 ([`keys`]). Without keys or JWT settings, authentication is
//! off and every caller is [`Principal::local_admin`] (the binary then only listens on loopback).
//!
//! The router runs [`authenticate`] before every `/v1` handler; a handler states the role it needs
//! by taking a [`Caller`]`<role::Reader>` (or `Writer`, `Admin`), which answers 403 to a caller with
//! a lower role. The table of routes and roles is in the router's module doc.

pub mod jwks;
pub mod jwt;
pub mod keys;

pub use jwt::{JwtOptions, JwtVerifier};
pub use keys::{ApiKey, KeyTable};

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quarry_core::Principal;
use std::marker::PhantomData;
use std::sync::Arc;

/// Who may call the server: off (everyone is the local admin), or API keys and/or JWTs.
#[derive(Clone, Default)]
pub struct Auth {
    on: Option<Arc<Authenticator>>,
}

struct Authenticator {
    keys: KeyTable,
    jwt: Option<JwtVerifier>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth({})", self.describe())
    }
}

impl Auth {
    /// No authentication: every caller is the local admin.
    pub fn off() -> Auth {
        Auth::default()
    }

    /// Authentication by `keys` and, when given, JWTs. Off when both are empty. The error says
    /// what is wrong with the JWT key material.
    pub fn new(keys: Vec<ApiKey>, jwt: Option<JwtOptions>) -> Result<Auth, String> {
        let jwt = jwt.map(JwtVerifier::new).transpose()?;
        if keys.is_empty() && jwt.is_none() {
            return Ok(Auth::off());
        }
        Ok(Auth {
            on: Some(Arc::new(Authenticator {
                keys: KeyTable::new(keys),
                jwt,
            })),
        })
    }

    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    /// Replaces the keys of the configured JWKS with those of `json` (see
    /// [`JwtVerifier::reload_jwks`]); the number of keys, or why the keys in use stay.
    pub fn reload_jwks(&self, json: &[u8]) -> Result<usize, String> {
        match self.on.as_ref().and_then(|a| a.jwt.as_ref()) {
            Some(jwt) => jwt.reload_jwks(json),
            None => Err("no JWKS is configured".into()),
        }
    }

    /// What is on, for the start-up line: `off`, `2 API keys, JWT (HS256, RS256)`,
    /// `JWT (RS256; key ids 2024-01, 2024-07)`.
    pub fn describe(&self) -> String {
        let Some(a) = &self.on else {
            return "off".to_owned();
        };
        let mut parts = Vec::new();
        match a.keys.len() {
            0 => {}
            1 => parts.push("1 API key".to_owned()),
            n => parts.push(format!("{n} API keys")),
        }
        if let Some(jwt) = &a.jwt {
            parts.push(format!("JWT ({})", jwt.describe()));
        }
        parts.join(", ")
    }

    /// The caller an `Authorization` header names. A 401 `unauthorized` error (with a message
    /// that never repeats the token) when it is missing, malformed, unknown or expired.
    pub fn authenticate(&self, header: Option<&HeaderValue>) -> Result<Principal, ApiError> {
        let Some(a) = &self.on else {
            return Ok(Principal::local_admin());
        };
        let token = bearer_token(header).map_err(unauthorized)?;
        if jwt::looks_like_jwt(token) {
            let Some(verifier) = &a.jwt else {
                return Err(unauthorized(
                    "this server does not accept JWTs; use an API key".into(),
                ));
            };
            verifier.verify(token).map_err(unauthorized)
        } else {
            a.keys
                .find(token)
                .cloned()
                .ok_or_else(|| unauthorized("unknown API key".into()))
        }
    }
}

fn unauthorized(message: String) -> ApiError {
    ApiError::new("unauthorized", message)
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(header: Option<&HeaderValue>) -> Result<&str, String> {
    let Some(value) = header else {
        return Err("this server requires authentication: send `Authorization: Bearer <token>` with an API key or a JWT".into());
    };
    let malformed = || "the Authorization header must be `Bearer <token>`".to_owned();
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(char::is_whitespace)
    {
        return Err(malformed());
    }
    Ok(token)
}

/// The principal the [`authenticate`] layer found, in the request's extensions.
#[derive(Clone)]
struct Authenticated(Principal);

/// Middleware: authenticates the request, or answers 401 without running the handler.
pub async fn authenticate(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let mut response = match auth.authenticate(req.headers().get(AUTHORIZATION)) {
        Ok(principal) => {
            req.extensions_mut().insert(Authenticated(principal));
            next.run(req).await
        }
        Err(e) => {
            tracing::info!(reason = %e.message, "authentication failed");
            e.into_response()
        }
    };
    // A refused caller's body is never read, and hyper then closes the connection after the
    // answer; saying so lets a client's pool open a new one instead of reusing a dead one.
    if matches!(
        response.status(),
        axum::http::StatusCode::UNAUTHORIZED | axum::http::StatusCode::FORBIDDEN
    ) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Roles a route can require, as types: `Caller<role::Writer>`.
pub mod role {
    use quarry_core::Role;

    /// The least role a route needs.
    pub trait MinRole: Send + Sync + 'static {
        const ROLE: Role;
    }

    /// Query and read routes.
    pub struct Reader;
    /// Routes that change documents.
    pub struct Writer;
    /// Routes that change the server's settings, versions or jobs.
    pub struct Admin;

    impl MinRole for Reader {
        const ROLE: Role = Role::Reader;
    }
    impl MinRole for Writer {
        const ROLE: Role = Role::Writer;
    }
    impl MinRole for Admin {
        const ROLE: Role = Role::Admin;
    }
}

/// The authenticated caller of a route that needs at least role `R`; a caller with a lower role
/// gets 403 `forbidden`.
pub struct Caller<R> {
    pub principal: Principal,
    role: PhantomData<R>,
}

impl<S: Send + Sync, R: role::MinRole> FromRequestParts<S> for Caller<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(Authenticated(principal)) = parts.extensions.get::<Authenticated>() else {
            tracing::error!("a route that needs a caller runs without the authentication layer");
            return Err(ApiError::new(
                "internal",
                "internal error; the server log has the details under this request id",
            ));
        };
        if principal.role < R::ROLE {
            return Err(ApiError::new(
                "forbidden",
                format!(
                    "this route needs the {} role; `{}` has the {} role",
                    R::ROLE.as_str(),
                    principal.user,
                    principal.role.as_str()
                ),
            ));
        }
        Ok(Caller {
            principal: principal.clone(),
            role: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::Role;

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap()
    }

    fn auth() -> Auth {
        Auth::new(
            vec![ApiKey::from_key(
                "secret-key",
                Principal::new("alice", vec!["eng".into()], Role::Writer),
            )],
            None,
        )
        .unwrap()
    }

    #[test]
    fn bearer_header_forms() {
        let a = auth();
        for ok in [
            "Bearer secret-key",
            "bearer secret-key",
            "BEARER  secret-key ",
        ] {
            assert_eq!(a.authenticate(Some(&header(ok))).unwrap().user, "alice");
        }
        for bad in [
            "secret-key",
            "Basic secret-key",
            "Bearer",
            "Bearer ",
            "Bearer secret key",
            "Token secret-key",
        ] {
            let e = a.authenticate(Some(&header(bad))).unwrap_err();
            assert_eq!(e.code, "unauthorized", "{bad:?}");
            assert!(!e.message.contains("secret"), "{bad:?}: {}", e.message);
        }
        let e = a.authenticate(None).unwrap_err();
        assert!(e.message.contains("Authorization: Bearer"));
        let e = a
            .authenticate(Some(&header("Bearer wrong-key")))
            .unwrap_err();
        assert_eq!(e.message, "unknown API key");
        let e = a.authenticate(Some(&header("Bearer a.b.c"))).unwrap_err();
        assert!(e.message.contains("JWT"), "{}", e.message);
    }

    #[test]
    fn off_means_local_admin_and_describe_says_what_is_on() {
        let off = Auth::off();
        assert!(!off.is_on());
        assert_eq!(off.describe(), "off");
        assert_eq!(
            off.authenticate(None).unwrap(),
            Principal::local_admin(),
            "no header needed"
        );
        assert!(!Auth::new(vec![], None).unwrap().is_on());
        assert_eq!(auth().describe(), "1 API key");
        let both = Auth::new(
            vec![
                ApiKey::from_key("a", Principal::local_admin()),
                ApiKey::from_key("b", Principal::local_admin()),
            ],
            Some(JwtOptions {
                hs256_secret: Some(vec![1; 32]),
                ..JwtOptions::default()
            }),
        )
        .unwrap();
        assert_eq!(both.describe(), "2 API keys, JWT (HS256)");
        assert!(
            !format!("{both:?}").contains("[1, 1"),
            "no secrets in Debug"
        );
    }
}
