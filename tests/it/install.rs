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
