//! Tests of JWT verification: claims, algorithms, keys, issuer, audience and the refusals.

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

fn sign_with(header: jsonwebtoken::Header, claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn kid_header(alg: Algorithm, kid: &str) -> jsonwebtoken::Header {
    let mut h = jsonwebtoken::Header::new(alg);
    h.kid = Some(kid.to_owned());
    h
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwks(keys: &[(&str, &[u8])]) -> Vec<u8> {
    let keys: Vec<_> = keys
        .iter()
        .map(|(kid, k)| serde_json::json!({"kty": "oct", "kid": kid, "k": b64(k)}))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
}

const OLD: &[u8] = b"old-secret-old-secret-old-secret";
const NEW: &[u8] = b"new-secret-new-secret-new-secret";

#[test]
fn nbf_in_the_future_is_refused_beyond_the_leeway() {
    let v = JwtVerifier::new(JwtOptions {
        hs256_secret: Some(SECRET.to_vec()),
        leeway_secs: 30,
        ..JwtOptions::default()
    })
    .unwrap();
    let exp = now() + 10 * 365 * 86400;
    for nbf in [now() + 3600, now() + 365 * 86400] {
        let t = sign(
            serde_json::json!({"sub": "a", "exp": exp, "nbf": nbf}),
            SECRET,
        );
        assert!(v.verify(&t).unwrap_err().contains("not valid yet"), "{nbf}");
    }
    for nbf in [now() - 3600, now(), now() + 10] {
        let t = sign(
            serde_json::json!({"sub": "a", "exp": exp, "nbf": nbf}),
            SECRET,
        );
        assert!(
            v.verify(&t).is_ok(),
            "nbf {nbf} is within the leeway or past"
        );
    }
    let t = sign(
        serde_json::json!({"sub": "a", "exp": exp, "nbf": "soon"}),
        SECRET,
    );
    assert!(v.verify(&t).unwrap_err().contains("`nbf`"));
}

#[test]
fn a_kid_chooses_the_key_and_unknown_kids_are_refused() {
    let v = JwtVerifier::new(JwtOptions {
        hs256_secret: Some(SECRET.to_vec()),
        jwks_json: Some(jwks(&[("old", OLD)])),
        ..JwtOptions::default()
    })
    .unwrap();
    assert_eq!(v.describe(), "HS256; key ids old");
    let claims = serde_json::json!({"sub": "a", "exp": now() + 60});
    let with = |kid: &str, secret: &[u8]| {
        v.verify(&sign_with(
            kid_header(Algorithm::HS256, kid),
            claims.clone(),
            secret,
        ))
    };
    assert!(with("old", OLD).is_ok());
    assert!(with("old", SECRET).unwrap_err().contains("signature"));
    assert!(with("new", NEW).unwrap_err().contains("unknown key id"));
    assert!(
        with("new", SECRET).unwrap_err().contains("unknown key id"),
        "no fallback to the key without a kid"
    );
    // Without a kid: the one key configured without one.
    assert!(v.verify(&sign(claims.clone(), SECRET)).is_ok());
    assert!(
        v.verify(&sign(claims.clone(), OLD))
            .unwrap_err()
            .contains("signature")
    );

    // Rotation: add the new key, both verify; drop the old one, it is unknown.
    assert_eq!(v.reload_jwks(&jwks(&[("old", OLD), ("new", NEW)])), Ok(2));
    assert!(with("old", OLD).is_ok() && with("new", NEW).is_ok());
    let clone = v.clone();
    assert_eq!(v.reload_jwks(&jwks(&[("new", NEW)])), Ok(1));
    assert!(with("old", OLD).unwrap_err().contains("unknown key id"));
    assert!(
        clone
            .verify(&sign_with(
                kid_header(Algorithm::HS256, "old"),
                claims.clone(),
                OLD
            ))
            .is_err(),
        "clones share the key set"
    );
    // A bad set leaves the keys in use.
    assert!(v.reload_jwks(b"{}").is_err());
    assert!(v.reload_jwks(&jwks(&[("new", b"short")])).is_err());
    assert!(with("new", NEW).is_ok());
}

#[test]
fn the_algorithm_is_the_keys() {
    // An RSA public key's bytes used as an HMAC secret: refused whether the token names the
    // RSA key's kid or no kid.
    // The workspace's test-only RSA key pair (tests/fixtures/auth).
    let pem: &[u8] = include_bytes!("../../../../tests/fixtures/auth/rs256-test-public.pem");
    let v = JwtVerifier::new(JwtOptions {
        rs256_public_key_pem: Some(pem.to_vec()),
        rs256_kid: Some("rsa".into()),
        ..JwtOptions::default()
    })
    .unwrap();
    let claims = serde_json::json!({"sub": "a", "exp": now() + 60});
    let e = v
        .verify(&sign_with(
            kid_header(Algorithm::HS256, "rsa"),
            claims.clone(),
            pem,
        ))
        .unwrap_err();
    assert!(e.contains("algorithm does not match the key"), "{e}");
    let e = v.verify(&sign(claims.clone(), pem)).unwrap_err();
    assert!(e.contains("HS256 is not accepted"), "{e}");
    // Single-key settings without a kid ignore a token's kid, as before key ids existed.
    let legacy = hs256();
    let t = sign_with(
        kid_header(Algorithm::HS256, "whatever"),
        serde_json::json!({"sub": "a", "exp": now() + 60, "iss": "idp"}),
        SECRET,
    );
    assert!(legacy.verify(&t).is_ok());
    // ...but once keys have ids, a token without one needs a key without one.
    let only_kids = JwtVerifier::new(JwtOptions {
        jwks_json: Some(jwks(&[("old", OLD)])),
        ..JwtOptions::default()
    })
    .unwrap();
    let e = only_kids.verify(&sign(claims, OLD)).unwrap_err();
    assert!(e.contains("no key id"), "{e}");
}

#[test]
fn key_ids_must_be_unique() {
    let e = JwtVerifier::new(JwtOptions {
        hs256_secret: Some(SECRET.to_vec()),
        hs256_kid: Some("old".into()),
        jwks_json: Some(jwks(&[("old", OLD)])),
        ..JwtOptions::default()
    })
    .unwrap_err();
    assert!(e.contains("unique"), "{e}");
}
