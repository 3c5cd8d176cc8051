//! JSON Web Key Sets (RFC 7517): the keys of `auth.jwt.jwks_file`, each named by its `kid`.
//!
//! A set is parsed with jsonwebtoken's [`JwkSet`] and each key made a [`DecodingKey`] with
//! [`DecodingKey::from_jwk`]. Every key must have a `kid` (tokens choose their key by it) and
//! fixes the one algorithm it verifies: its `alg` member, else `RS256` for an `RSA` key and `HS256`
//! for an `oct` key. A token's header never chooses the algorithm; it must agree with the key's.
//! Keys marked `"use": "enc"` are not signing keys and are left out; other key types (`EC`, `OKP`)
//! are refused, so a set that quarry cannot fully use is reported at load, not at the first token.

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Largest JWKS document read, in bytes: a set of a few dozen RSA keys is far below it.
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// A key a token can be verified with: its key id, the one algorithm it verifies, the key.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Shortest HMAC secret accepted for `alg`: the size of its hash (RFC 7518 section 3.2).
pub fn min_hmac_bytes(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// The signing keys of a JWKS document, or what is wrong with it (naming the key).
pub fn parse(json: &[u8]) -> Result<Vec<VerifyKey>, String> {
    if json.len() > MAX_JWKS_BYTES {
        return Err(format!(
            "the key set is {} bytes; at most {MAX_JWKS_BYTES} are read",
            json.len()
        ));
    }
    let set: JwkSet = serde_json::from_slice(json).map_err(|e| {
        format!(
            "not a JSON Web Key Set ({e}); expected {{\"keys\": [{{\"kty\": \"RSA\", \"kid\": \"…\", \"n\": \"…\", \"e\": \"AQAB\"}}]}}"
        )
    })?;
    let mut out: Vec<VerifyKey> = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else {
            return Err(format!(
                "keys[{i}] has no `kid`: every key of the set needs one, and tokens name it in their header"
            ));
        };
        let at = format!("keys[{i}] (kid {kid:?})");
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS384)) => Algorithm::RS384,
            (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS512)) => Algorithm::RS512,
            (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS256)) => Algorithm::PS256,
            (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS384)) => Algorithm::PS384,
            (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS512)) => Algorithm::PS512,
            (AlgorithmParameters::OctetKey(_), None | Some(KeyAlgorithm::HS256)) => {
                Algorithm::HS256
            }
            (AlgorithmParameters::OctetKey(_), Some(KeyAlgorithm::HS384)) => Algorithm::HS384,
            (AlgorithmParameters::OctetKey(_), Some(KeyAlgorithm::HS512)) => Algorithm::HS512,
            (AlgorithmParameters::RSA(_) | AlgorithmParameters::OctetKey(_), Some(other)) => {
                return Err(format!(
                    "{at}: `alg` {other:?} is not a signature algorithm of its key type; use RS256, RS384, RS512, PS256, PS384 or PS512 for `RSA`, HS256, HS384 or HS512 for `oct`"
                ));
            }
            _ => {
                return Err(format!(
                    "{at}: only `RSA` and `oct` keys are supported (not EC or OKP)"
                ));
            }
        };
        let key =
            DecodingKey::from_jwk(jwk).map_err(|e| format!("{at}: not a usable key ({e})"))?;
        if let Ok(secret) = key.try_get_hmac_secret()
            && secret.len() < min_hmac_bytes(alg)
        {
            return Err(format!(
                "{at}: the {alg:?} secret is {} bytes; use at least {}",
                secret.len(),
                min_hmac_bytes(alg)
            ));
        }
        if out.iter().any(|k| k.kid.as_deref() == Some(kid.as_str())) {
            return Err(format!(
                "{at}: another key of the set has the same `kid`; key ids must be unique"
            ));
        }
        out.push(VerifyKey {
            kid: Some(kid),
            alg,
            key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn parse_value(v: serde_json::Value) -> Result<Vec<VerifyKey>, String> {
        parse(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn oct_keys_take_their_algorithm_from_the_key() {
        let keys = parse_value(json!({"keys": [
            {"kty": "oct", "kid": "a", "k": b64(&[1; 32])},
            {"kty": "oct", "kid": "b", "alg": "HS512", "k": b64(&[2; 64])},
            {"kty": "oct", "kid": "c", "use": "enc", "k": b64(&[3; 32])},
        ]}))
        .unwrap();
        let got: Vec<_> = keys.iter().map(|k| (k.kid.clone(), k.alg)).collect();
        assert_eq!(
            got,
            [
                (Some("a".to_owned()), Algorithm::HS256),
                (Some("b".to_owned()), Algorithm::HS512)
            ],
            "encryption keys are left out"
        );
    }

    #[test]
    fn bad_sets_say_which_key_is_wrong() {
        for (set, want) in [
            (json!({"nope": []}), "JSON Web Key Set"),
            (
                json!({"keys": [{"kty": "oct", "k": b64(&[1; 32])}]}),
                "no `kid`",
            ),
            (
                json!({"keys": [{"kty": "oct", "kid": "", "k": b64(&[1; 32])}]}),
                "no `kid`",
            ),
            (
                json!({"keys": [{"kty": "oct", "kid": "s", "k": b64(&[1; 16])}]}),
                "at least 32",
            ),
            (
                json!({"keys": [{"kty": "oct", "kid": "s", "alg": "HS512", "k": b64(&[1; 32])}]}),
                "at least 64",
            ),
            (
                json!({"keys": [{"kty": "oct", "kid": "s", "alg": "RS256", "k": b64(&[1; 32])}]}),
                "not a signature algorithm",
            ),
            (
                json!({"keys": [{"kty": "RSA", "kid": "r", "alg": "HS256", "n": "AQAB", "e": "AQAB"}]}),
                "not a signature algorithm",
            ),
            (
                json!({"keys": [{"kty": "EC", "kid": "e", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])}]}),
                "only `RSA` and `oct`",
            ),
            (
                json!({"keys": [
                    {"kty": "oct", "kid": "d", "k": b64(&[1; 32])},
                    {"kty": "oct", "kid": "d", "k": b64(&[2; 32])}
                ]}),
                "same `kid`",
            ),
        ] {
            let e = parse_value(set.clone()).unwrap_err();
            assert!(e.contains(want), "{set}: {e}");
        }
        let e = parse(&vec![b' '; MAX_JWKS_BYTES + 1]).unwrap_err();
        assert!(e.contains("at most"), "{e}");
    }
}
