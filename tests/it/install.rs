//! Installation: `quarry completions SHELL` prints a completion script of that shell naming the
//! subcommands, with no data directory or configuration needed; the packaging files exist.

use crate::{quarry, tmp, write_tree};

#[test]
fn completions_name_the_subcommands_in_each_shell() {
    // A broken configuration in the current directory's default data dir must not matter.
    let dir = tmp();
    write_tree(
        dir.path(),
        &[("quarry-data/quarry.toml", b"[chunk]\nnope = 1\n")],
    );
    for (shell, marker) in [
        ("bash", "complete -F _quarry"),
        ("zsh", "#compdef quarry"),
        ("fish", "complete -c quarry"),
    ] {
        let out = quarry()
            .current_dir(dir.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for sub in ["ingest", "serve", "query", "reindex", "completions"] {
            assert!(script.contains(sub), "{shell} script does not name {sub}");
        }
        assert!(script.contains("top-k"), "{shell} script lacks flags");
    }
    let out = quarry().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(!dir.path().join("quarry-data/catalog.sqlite3").exists());
}

#[test]
fn the_license_is_the_apache_text_cargo_toml_names() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"Apache-2.0\""));
    let license = std::fs::read_to_string(root.join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
    assert!(license.contains("END OF TERMS AND CONDITIONS"));
}

/// `scripts/demo.sh` asks cargo where the target directory is: its own lines, run with
/// `CARGO_TARGET_DIR` elsewhere, name the binary there (the release build itself is not run).
#[test]
fn the_demo_finds_the_binary_where_cargo_puts_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("scripts/demo.sh")).unwrap();
    let lines: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("target_dir=") || l.starts_with("bin="))
        .collect();
    assert_eq!(lines.len(), 2, "the demo's two lines that find the binary");
    let probe = format!("{}\nprintf %s \"$bin\"", lines.join("\n"));
    // the cargo running these tests, first on PATH
    let cargo = std::path::PathBuf::from(std::env::var("CARGO").unwrap());
    let path = format!(
        "{}:{}",
        cargo.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let elsewhere = crate::tmp();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&probe)
        .current_dir(root)
        .env("PATH", &path)
        .env("CARGO_TARGET_DIR", elsewhere.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap()),
        elsewhere.path().join("release/quarry")
    );
}

/// The Dockerfile cannot be built here, so what it tells quarry is checked against the binary:
/// its `CMD` refuses to serve 0.0.0.0 without authentication (as docs/install.md says), serves
/// with the API key the docs put in the data volume, found through the image's
/// `QUARRY_DATA_DIR`, and the `HEALTHCHECK` path answers 200.
#[test]
fn the_dockerfile_command_and_health_check_work_with_the_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docker = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let cmd_line = docker
        .lines()
        .find(|l| l.starts_with("CMD "))
        .expect("a CMD");
    let args: Vec<String> = serde_json::from_str(&cmd_line["CMD ".len()..]).unwrap();
    assert_eq!(args[..3], ["serve", "--addr", "0.0.0.0:7878"]);
    let health = docker
        .split("http://127.0.0.1:7878")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a HEALTHCHECK URL");
    assert!(docker.contains("ENV QUARRY_DATA_DIR=/data"));
    assert!(docker.contains("USER quarry") && docker.contains("VOLUME [\"/data\", \"/models\"]"));

    // the same command on a free port, the data directory given as the image gives it
    let data = tmp();
    let serve = |extra: &[(&str, &str)]| {
        let mut c = quarry();
        c.args(["serve", "--addr", "0.0.0.0:0"])
            .env("QUARRY_DATA_DIR", data.path())
            .envs(extra.iter().copied());
        c
    };
    let out = serve(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no auth on 0.0.0.0 is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("[[auth.api_keys]]"));

    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(b"container-key")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let config = format!(
        "[[auth.api_keys]]\nkey_sha256 = \"{digest}\"\nuser = \"admin\"\nrole = \"admin\"\n"
    );
    write_tree(data.path(), &[("quarry.toml", config.as_bytes())]);
    // stderr to a file, read while the server runs (a closed pipe would fail its writes)
    let log_path = data.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = serve(&[]).stderr(log).spawn().unwrap();
    let start = std::time::Instant::now();
    let port = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(rest) = text.split("http://0.0.0.0:").nth(1) {
            break rest.split_whitespace().next().unwrap_or("").to_owned();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60)
                && child.try_wait().unwrap().is_none(),
            "the server did not start: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let url = format!("http://127.0.0.1:{port}{health}");
    let status = loop {
        let s = reqwest::blocking::get(&url)
            .map(|r| r.status().as_u16())
            .ok();
        if s == Some(200) || start.elapsed() > std::time::Duration::from_secs(60) {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(200), "{url}");
}
