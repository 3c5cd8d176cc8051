//! Walking the ingest paths with the `ignore` crate: `.gitignore` and `.quarryignore` are honoured
//! (inside or outside a git repository), hidden files are skipped, and symbolic links are never
//! followed out of the root they were found under.

use super::summary::Problem;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A file to ingest.
#[derive(Debug, Clone)]
pub struct WalkedFile {
    /// The file to read (a symlink's target inside the root).
    pub path: PathBuf,
    /// `/`-separated path relative to the ingest root.
    pub doc_id: String,
    pub size: u64,
    /// The ACL of the nearest `.quarry-acl.toml` at or above the file's directory, if any.
    pub acl: Option<Vec<String>>,
}

/// The name of a folder's ACL file.
pub(super) const ACL_FILE: &str = ".quarry-acl.toml";

/// A `.quarry-acl.toml`: `allow = ["group:eng", "user:alice", "public"]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    allow: Vec<String>,
}

/// Finds the ACL file that applies to each directory (the nearest at or above it), reading each
/// file once. An invalid ACL file is an error for every file under it: ingesting them with some
/// other ACL could expose them.
#[derive(Default)]
struct AclResolver {
    by_dir: std::collections::HashMap<PathBuf, std::result::Result<Option<Vec<String>>, String>>,
}

impl AclResolver {
    fn for_dir(&mut self, dir: &Path) -> std::result::Result<Option<Vec<String>>, String> {
        if let Some(found) = self.by_dir.get(dir) {
            return found.clone();
        }
        let here = dir.join(ACL_FILE);
        let found = if here.is_file() {
            read_acl_file(&here).map(Some)
        } else {
            match dir.parent() {
                Some(parent) => self.for_dir(parent),
                None => Ok(None),
            }
        };
        self.by_dir.insert(dir.to_path_buf(), found.clone());
        found
    }

    fn for_file(&mut self, path: &Path) -> std::result::Result<Option<Vec<String>>, String> {
        match path.parent() {
            Some(dir) => self.for_dir(dir),
            None => Ok(None),
        }
    }
}

fn read_acl_file(path: &Path) -> std::result::Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_acl_file(&text).map_err(|why| format!("{}: {why}", path.display()))
}

/// The principals of the text of a `.quarry-acl.toml`, checked and normalised, or why it is
/// invalid.
pub fn parse_acl_file(text: &str) -> std::result::Result<Vec<String>, String> {
    let file: AclFile = toml::from_str(text).map_err(|e| {
        format!(
            "{}; the file holds one line like allow = [\"group:eng\", \"user:alice\", \"public\"]",
            e.message()
        )
    })?;
    if file.allow.is_empty() {
        return Err(
            "`allow` is empty; name at least one principal (documents without an ACL get the default ACL)"
                .into(),
        );
    }
    quarry_core::acl::normalize_acl(&file.allow).map_err(|e| e.to_string())
}

#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<WalkedFile>,
    pub problems: Vec<Problem>,
    /// Canonical directories walked (for `--sync`).
    pub roots: Vec<PathBuf>,
}

fn relative_id(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Lists the files under `paths`. A path that does not exist is an input error; problems with
/// single entries (unreadable directories, escaping symlinks) are reported and skipped.
pub fn walk(paths: &[PathBuf]) -> Result<Walk> {
    let mut out = Walk::default();
    let mut acls = AclResolver::default();
    let mut push = |out: &mut Walk, file: WalkedFile, dir_of: &Path| match acls.for_file(dir_of) {
        Ok(acl) => out.files.push(WalkedFile { acl, ..file }),
        Err(why) => out.problems.push(Problem::new(
            file.path.display().to_string(),
            "bad_acl_file",
            format!("not ingested: the ACL file that applies is invalid: {why}"),
        )),
    };
    for given in paths {
        let root = given.canonicalize().map_err(|e| {
            Error::Input(format!(
                "cannot ingest {}: {e}; check the path exists and is readable",
                given.display()
            ))
        })?;
        if root.is_file() {
            let size = root.metadata().map(|m| m.len()).unwrap_or(0);
            let doc_id = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let file = WalkedFile {
                path: root.clone(),
                doc_id,
                size,
                acl: None,
            };
            push(&mut out, file, &root);
            continue;
        }
        out.roots.push(root.clone());
        let walker = ignore::WalkBuilder::new(&root)
            .hidden(true)
            .git_ignore(true)
            .git_global(false)
            .require_git(false)
            .add_custom_ignore_filename(".quarryignore")
            .follow_links(false)
            .sort_by_file_name(|a, b| a.cmp(b))
            .build();
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.problems.push(Problem::new(
                        root.display().to_string(),
                        "unreadable",
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let Some(ft) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if ft.is_dir() {
                continue;
            }
            let target = if ft.is_symlink() {
                match path.canonicalize() {
                    Ok(t) if t.starts_with(&root) && t.is_file() => t,
                    Ok(t) => {
                        out.problems.push(Problem::new(
                            path.display().to_string(),
                            "symlink_outside_root",
                            format!(
                                "points to {}, outside {} (or not a file); not followed",
                                t.display(),
                                root.display()
                            ),
                        ));
                        continue;
                    }
                    Err(e) => {
                        out.problems.push(Problem::new(
                            path.display().to_string(),
                            "broken_symlink",
                            e.to_string(),
                        ));
                        continue;
                    }
                }
            } else if ft.is_file() {
                path.to_path_buf()
            } else {
                continue;
            };
            let size = target.metadata().map(|m| m.len()).unwrap_or(0);
            let file = WalkedFile {
                doc_id: relative_id(&root, path),
                path: target,
                size,
                acl: None,
            };
            push(&mut out, file, path);
        }
    }
    Ok(out)
}
