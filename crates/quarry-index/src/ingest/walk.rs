//! Walking the ingest paths with the `ignore` crate: `.gitignore` and `.quarryignore` are honoured
//! (inside or outside a git repository), hidden files are skipped, and symbolic links are never
//! followed out of the root they were found under.

use super::Problem;
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
            out.files.push(WalkedFile {
                path: root,
                doc_id,
                size,
            });
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
            out.files.push(WalkedFile {
                doc_id: relative_id(&root, path),
                path: target,
                size,
            });
        }
    }
    Ok(out)
}
