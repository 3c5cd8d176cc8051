//! Tests of the `[auth]` section: keys, JWT settings, the default ACL and the principals they make.

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
    let c = load_toml("[auth.jwt]\nrs256_public_key_file = \"/nonexistent/key.pem\"\n").unwrap();
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
