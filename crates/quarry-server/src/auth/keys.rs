//! API keys: the configured keys are stored as sha256 digests only, and a presented key is hashed
//! and compared with every digest in constant time, so neither the keys nor which digest was close
//! to matching can be learnt from the server's memory or its response times.

use quarry_core::Principal;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Bytes of a sha256 digest.
pub const DIGEST_LEN: usize = 32;

/// One configured API key: the sha256 digest of the key and the principal it authenticates.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; DIGEST_LEN],
    pub principal: Principal,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// A key from its digest as 64 hex characters (either case); `None` if it is not one.
    pub fn from_hex(key_sha256: &str, principal: Principal) -> Option<ApiKey> {
        Some(ApiKey {
            digest: parse_digest(key_sha256)?,
            principal,
        })
    }

    /// A key from the key itself (tests, and tools that mint keys).
    pub fn from_key(key: &str, principal: Principal) -> ApiKey {
        ApiKey {
            digest: digest(key),
            principal,
        }
    }
}

/// The sha256 of `key`.
pub fn digest(key: &str) -> [u8; DIGEST_LEN] {
    Sha256::digest(key.as_bytes()).into()
}

/// 64 hex characters as 32 bytes.
pub fn parse_digest(hex: &str) -> Option<[u8; DIGEST_LEN]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 2 * DIGEST_LEN {
        return None;
    }
    let mut out = [0u8; DIGEST_LEN];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The configured keys.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    keys: Vec<ApiKey>,
}

impl KeyTable {
    pub fn new(keys: Vec<ApiKey>) -> KeyTable {
        KeyTable { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal of the key `token`, if one is configured. Every digest is compared, in
    /// constant time and without an early exit, whether or not an earlier one matched.
    pub fn find(&self, token: &str) -> Option<&Principal> {
        let presented = digest(token);
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, key) in self.keys.iter().enumerate() {
            let eq = key.digest[..].ct_eq(&presented[..]);
            index.conditional_assign(&(i as u64), eq);
            found |= eq;
        }
        bool::from(found).then(|| &self.keys[index as usize].principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::Role;

    fn p(user: &str) -> Principal {
        Principal::new(user, vec![], Role::Reader)
    }

    #[test]
    fn digests_parse_from_hex_of_either_case() {
        // sha256("abc"), FIPS 180-2 appendix B.1.
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(parse_digest(hex), Some(digest("abc")));
        assert_eq!(parse_digest(&hex.to_uppercase()), Some(digest("abc")));
        for bad in ["", &hex[..63], &format!("{hex}0"), &hex.replace('b', "g")] {
            assert_eq!(parse_digest(bad), None, "{bad:?}");
        }
        // a multi-byte character at an even offset is not two hex digits
        assert_eq!(parse_digest(&format!("é{}", &hex[2..])), None);
    }

    #[test]
    fn finds_the_matching_key_wherever_it_is() {
        let table = KeyTable::new(vec![
            ApiKey::from_key("key-a", p("a")),
            ApiKey::from_key("key-b", p("b")),
            ApiKey::from_key("key-c", p("c")),
        ]);
        assert_eq!(table.find("key-a").map(|p| p.user.as_str()), Some("a"));
        assert_eq!(table.find("key-b").map(|p| p.user.as_str()), Some("b"));
        assert_eq!(table.find("key-c").map(|p| p.user.as_str()), Some("c"));
        for unknown in ["", "key-", "key-d", "KEY-A", "key-a "] {
            assert!(table.find(unknown).is_none(), "{unknown:?}");
        }
        assert!(KeyTable::default().find("key-a").is_none());
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let from_hex = KeyTable::new(vec![ApiKey::from_hex(hex, p("abc")).unwrap()]);
        assert_eq!(from_hex.find("abc").map(|p| p.user.as_str()), Some("abc"));
    }

    #[test]
    fn the_comparison_visits_every_key() {
        // No early exit: the scan goes on after a match. Configuration rejects duplicate digests,
        // but a table holding one twice shows it: the last match wins, where a scan that stopped
        // at the first match would return the first.
        let table = KeyTable::new(vec![
            ApiKey::from_key("k", p("first")),
            ApiKey::from_key("other", p("other")),
            ApiKey::from_key("k", p("second")),
        ]);
        assert_eq!(table.find("k").map(|p| p.user.as_str()), Some("second"));
        // Digests one bit away from the presented one do not match.
        let mut keys = Vec::new();
        for i in 0..8 * DIGEST_LEN {
            let mut near = digest("k");
            near[i / 8] ^= 1 << (i % 8);
            keys.push(ApiKey {
                digest: near,
                principal: p("near"),
            });
        }
        assert!(KeyTable::new(keys).find("k").is_none());
    }
}
