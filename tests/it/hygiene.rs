//! Repository hygiene, checked on the source tree rather than on behaviour: every `.rs` file opens
//! with a `//!` module doc, no file refers to files beside the repository, no two modules of a
//! crate import each other, and no non-test `.rs` file is over 600 lines (DEVELOPERS.md, "Hygiene").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest non-test `.rs` file allowed, in lines.
const MAX_LINES: usize = 600;

/// The repository root (the root package's manifest folder).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files tracked by git, relative to the root, `/`-separated; when git is absent (or this is not a
/// checkout), every file found by walking the tree, without `target/` folders and hidden ones.
fn tracked_files() -> Vec<String> {
    let root = root();
    let git = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output();
    if let Ok(out) = git
        && out.status.success()
        && !out.stdout.is_empty()
    {
        return out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| root.join(p).is_file())
            .collect();
    }
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    files
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if name.starts_with('.') || name == "target" {
                continue;
            }
            walk(root, &path, out);
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn rust_files() -> Vec<String> {
    tracked_files()
        .into_iter()
        .filter(|f| f.ends_with(".rs"))
        .collect()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Test code by its place: `tests.rs`, `*_tests.rs`, anything under a `tests/` or `benches/`
/// folder, and the fuzz harnesses (`fuzz/`).
fn is_test_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let dirs: Vec<&str> = rel.split('/').collect();
    let dirs = &dirs[..dirs.len() - 1];
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || dirs
            .iter()
            .any(|d| *d == "tests" || *d == "benches" || *d == "fuzz")
}

/// The files among `files` whose first non-blank line is not a `//!` module doc.
fn files_without_module_doc(files: &[(String, String)]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, text)| {
            !text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_start().starts_with("//!"))
        })
        .map(|(f, _)| f.clone())
        .collect()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let files: Vec<(String, String)> = rust_files()
        .into_iter()
        .map(|f| {
            let text = read(&f);
            (f, text)
        })
        .collect();
    let missing = files_without_module_doc(&files);
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` module doc saying what the module is:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn no_file_refers_to_files_beside_the_repository() {
    // Spelled in two parts so that this file does not name it.
    let outside = concat!("..", "/shared");
    let mut hits = Vec::new();
    for rel in tracked_files() {
        let Ok(bytes) = std::fs::read(root().join(&rel)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            if line.contains(outside) {
                hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "files beside the repository are named (a clone does not have them; datasets come from \
         $QUARRY_DATASETS, fixtures live under fixtures/ or tests/fixtures/):\n  {}",
        hits.join("\n  ")
    );
}

/// Lines of `text` that cite the design or API document by the names they had outside the
/// repository (an invariant of the upper-case design file, the upper-case API file);
/// `docs/design.md` and `docs/http-api.md` are their homes.
fn outside_citations(text: &str) -> Vec<(usize, String)> {
    // Spelled in parts so that this file does not cite them.
    let design = concat!("DESIGN", " invariant");
    let api = concat!("API", ".md");
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            line.contains(design)
                || line.match_indices(api).any(|(i, _)| {
                    // `http-api.md` is ours; the upper-case name alone is not.
                    !line[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
                })
        })
        .map(|(i, line)| (i + 1, line.trim().to_owned()))
        .collect()
}

#[test]
fn no_file_cites_documents_outside_the_repository() {
    let mut hits = Vec::new();
    for rel in tracked_files() {
        let Ok(bytes) = std::fs::read(root().join(&rel)) else {
            continue;
        };
        for (n, line) in outside_citations(&String::from_utf8_lossy(&bytes)) {
            hits.push(format!("{rel}:{n}: {line}"));
        }
    }
    assert!(
        hits.is_empty(),
        "cite docs/design.md (numbered invariants) or docs/http-api.md instead:\n  {}",
        hits.join("\n  ")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let mut report = Vec::new();
    for (crate_root, files) in crates() {
        let graph = module_graph(&files);
        let dir = &crate_root[..crate_root.rfind('/').map_or(0, |i| i + 1)];
        for (a, b) in mutual_pairs(&graph) {
            report.push(format!("{dir}{a} <-> {dir}{b}"));
        }
    }
    assert!(
        report.is_empty(),
        "modules that import each other (put what both need in a module that imports neither):\n  {}",
        report.join("\n  ")
    );
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    for rel in rust_files() {
        if is_test_file(&rel) {
            continue;
        }
        let lines = read(&rel).lines().count();
        if lines > MAX_LINES {
            long.push(format!("{rel}: {lines} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "non-test files over {MAX_LINES} lines (split them by concept; move inline test bodies \
         to a sibling tests.rs):\n  {}",
        long.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The module graph of a crate.
//
// Syntax is read with a small tokenizer rather than `syn`: the root package would need `syn` as a
// dev-dependency for this one test, and the subset read here (comments, strings, `mod NAME {`,
// `use` trees and `a::b` paths) is small and unit-tested below.

/// The workspace's crates whose sources live in a folder: `(crate root file, [(path relative to
/// the crate's source folder, text)])`. The root file is `lib.rs` or `main.rs` of `src/`.
fn crates() -> Vec<(String, Vec<(String, String)>)> {
    let files = rust_files();
    let mut roots: Vec<String> = files
        .iter()
        .filter(|f| {
            (f.ends_with("src/lib.rs") || f.ends_with("src/main.rs")) && !f.starts_with("fuzz/")
        })
        .cloned()
        .collect();
    roots.push("tests/it/main.rs".into());
    roots.sort();
    roots.dedup();
    roots
        .into_iter()
        .filter(|r| files.contains(r))
        .map(|r| {
            let dir = &r[..r.rfind('/').map_or(0, |i| i + 1)];
            let root_name = &r[dir.len()..];
            let members = files
                .iter()
                .filter(|f| f.starts_with(dir))
                .filter(|f| {
                    // Another crate root (a binary beside a library) starts its own crate.
                    let rest = &f[dir.len()..];
                    rest == root_name
                        || (rest != "lib.rs" && rest != "main.rs" && !rest.starts_with("bin/"))
                })
                .map(|f| (f[dir.len()..].to_owned(), read(f)))
                .collect();
            (r, members)
        })
        .collect()
}

/// The module path of a file, relative to its crate's source folder: `lib.rs` and `main.rs` are
/// the crate root (`[]`), `a/mod.rs` and `a.rs` are `[a]`, `a/b.rs` is `[a, b]`.
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return parts;
    }
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts
}

/// Source text with comments blanked out and string and char literals emptied, so that neither
/// is read as code. Line breaks are kept.
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r'
            && matches!(b.get(i + 1), Some(b'#') | Some(b'"'))
            && (i == 0
                || !is_ident_byte(b[i - 1])
                || (b[i - 1] == b'b' && (i < 2 || !is_ident_byte(b[i - 2]))))
        {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let closing: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&closing) {
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + closing.len();
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if b.get(i) == Some(&b'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '"') or a lifetime ('a).
            let close = if b.get(i + 1) == Some(&b'\\') {
                b.get(i + 3..)
                    .and_then(|t| t.iter().position(|x| *x == b'\''))
                    .map(|p| i + 3 + p)
            } else {
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let len = src[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&src[i..i + len]);
            i += len;
        }
    }
    out
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokenize(code: &str) -> Vec<Tok> {
    let b = code.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if is_ident_byte(c) {
            let start = i;
            while i < b.len() && is_ident_byte(b[i]) {
                i += 1;
            }
            let word = &code[start..i];
            // `r#ident` raw identifiers.
            if word == "r"
                && b.get(i) == Some(&b'#')
                && b.get(i + 1).is_some_and(|x| is_ident_byte(*x))
            {
                continue;
            }
            toks.push(Tok::Ident(word.to_owned()));
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            toks.push(Tok::PathSep);
            i += 2;
        } else {
            let ch = code[i..].chars().next().unwrap_or(' ');
            toks.push(Tok::Punct(ch));
            i += ch.len_utf8();
        }
    }
    toks
}

/// One leaf of a `use` tree: the path and the name it is bound to (`None` for a glob).
#[derive(Debug, Clone, PartialEq, Eq)]
struct UseLeaf {
    path: Vec<String>,
    name: Option<String>,
}

/// Expands the tokens of a `use` tree (between `use` and `;`) into its leaves:
/// `a::{b, c::d as e, self, *}` gives `a::b` (b), `a::c::d` (e), `a` (a), `a::*` (glob).
fn parse_use_tree(toks: &[Tok]) -> Vec<UseLeaf> {
    let mut leaves = Vec::new();
    let mut pos = 0;
    use_tree(toks, &mut pos, &[], &mut leaves);
    leaves
}

fn use_tree(toks: &[Tok], pos: &mut usize, prefix: &[String], out: &mut Vec<UseLeaf>) {
    let mut path = prefix.to_vec();
    if toks.get(*pos) == Some(&Tok::PathSep) {
        *pos += 1; // `::std::…`
    }
    loop {
        match toks.get(*pos) {
            Some(Tok::Ident(id)) => {
                path.push(id.clone());
                *pos += 1;
                if toks.get(*pos) == Some(&Tok::PathSep) {
                    *pos += 1;
                    continue;
                }
                let mut name = path.last().cloned();
                if path.last().map(String::as_str) == Some("self") {
                    path.pop();
                    name = path.last().cloned();
                }
                if toks.get(*pos) == Some(&Tok::Ident("as".into())) {
                    if let Some(Tok::Ident(alias)) = toks.get(*pos + 1) {
                        name = Some(alias.clone());
                    }
                    *pos += 2;
                }
                out.push(UseLeaf { path, name });
                return;
            }
            Some(Tok::Punct('*')) => {
                *pos += 1;
                out.push(UseLeaf { path, name: None });
                return;
            }
            Some(Tok::Punct('{')) => {
                *pos += 1;
                loop {
                    match toks.get(*pos) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *pos += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *pos += 1,
                        Some(_) => use_tree(toks, pos, &path, out),
                    }
                }
            }
            _ => return,
        }
    }
}

/// A module path from the crate root, `[engine, versions]`.
type ModPath = Vec<String>;
/// A path as written (`[super, Engine]`) with the module it is written in.
type WrittenPath = (ModPath, Vec<String>);
/// A re-exported name of a module.
type Reexport = (ModPath, String);

/// What one file says about modules: the paths it uses (with the module they are written in,
/// absolute or relative to it) and the names its `pub use` items re-export.
#[derive(Debug, Default)]
struct FileUses {
    /// `(module path the path is written in, path as written)`.
    paths: Vec<WrittenPath>,
    /// Re-exports: `(module path, name) -> (module path, path as written)`.
    reexports: Vec<(Reexport, WrittenPath)>,
    /// Inline modules (`mod name { … }`) the file holds.
    inline_mods: Vec<Vec<String>>,
}

/// Reads the `use` items and the `crate::`/`self::`/`super::`/`child::` paths of one file
/// whose module path is `module`. A `pub use` is a re-export, the module's interface: it is
/// recorded as such, not as a use by the module itself.
fn read_file_uses(module: &[String], src: &str) -> FileUses {
    let toks = tokenize(&strip_comments_and_strings(src));
    let mut uses = FileUses::default();
    // The stack of inline modules: (module path, brace depth at which its body opened).
    let mut stack: Vec<(Vec<String>, usize)> = vec![(module.to_vec(), 0)];
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let current = stack.last().map(|s| s.0.clone()).unwrap_or_default();
        match &toks[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if stack.len() > 1 && stack.last().is_some_and(|s| s.1 == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    let mut path = current.clone();
                    path.push(name.clone());
                    uses.inline_mods.push(path.clone());
                    depth += 1;
                    stack.push((path, depth));
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(kw) if kw == "use" && toks.get(i + 1) != Some(&Tok::PathSep) => {
                let public = is_pub_before(&toks, i);
                let end = toks[i..]
                    .iter()
                    .position(|t| *t == Tok::Punct(';'))
                    .map_or(toks.len(), |p| i + p);
                for leaf in parse_use_tree(&toks[i + 1..end]) {
                    match (public, &leaf.name) {
                        (true, Some(name)) => uses.reexports.push((
                            (current.clone(), name.clone()),
                            (current.clone(), leaf.path),
                        )),
                        (true, None) => {}
                        (false, _) => uses.paths.push((current.clone(), leaf.path)),
                    }
                }
                i = end + 1;
                continue;
            }
            // A path in code, `a::b::c`, not the tail of another (`x::a::b`).
            Tok::Ident(first)
                if toks.get(i + 1) == Some(&Tok::PathSep)
                    && (i == 0 || toks[i - 1] != Tok::PathSep) =>
            {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::PathSep) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(id)) => path.push(id.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                uses.paths.push((current.clone(), path));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    uses
}

/// Whether the `use` at `toks[i]` is `pub use` or `pub(…) use`.
fn is_pub_before(toks: &[Tok], i: usize) -> bool {
    if i >= 1 && toks[i - 1] == Tok::Ident("pub".into()) {
        return true;
    }
    // pub ( crate ) use  /  pub ( in a :: b ) use
    if i >= 1
        && toks[i - 1] == Tok::Punct(')')
        && let Some(open) = toks[..i].iter().rposition(|t| *t == Tok::Punct('('))
    {
        return open >= 1 && toks[open - 1] == Tok::Ident("pub".into());
    }
    false
}

/// The file-level import graph of one crate: `file -> files it uses` (paths relative to the
/// crate's source folder). A path counts as a use of the deepest module it names (a folder's
/// `mod.rs` is its module); a path through a module's re-export counts as a use of that module
/// and, following the re-export, of the module that defines the item.
fn module_graph(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    // Module path -> file holding it (inline modules map to their file).
    let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let mut parsed: Vec<(String, FileUses)> = Vec::new();
    for (rel, src) in files {
        let module = module_path(rel);
        modules.insert(module.clone(), rel.clone());
        parsed.push((rel.clone(), read_file_uses(&module, src)));
    }
    for (rel, uses) in &parsed {
        for m in &uses.inline_mods {
            modules.entry(m.clone()).or_insert_with(|| rel.clone());
        }
    }
    let mut reexports: BTreeMap<Reexport, WrittenPath> = BTreeMap::new();
    for (_, uses) in &parsed {
        for (key, target) in &uses.reexports {
            reexports.insert(key.clone(), target.clone());
        }
    }
    let ctx = Resolver {
        modules: &modules,
        reexports: &reexports,
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, uses) in &parsed {
        let edges = graph.entry(rel.clone()).or_default();
        for (module, path) in &uses.paths {
            let mut targets = BTreeSet::new();
            ctx.resolve(module, path, 0, &mut targets);
            for t in targets {
                if &t != rel {
                    edges.insert(t);
                }
            }
        }
    }
    graph
}

struct Resolver<'a> {
    modules: &'a BTreeMap<Vec<String>, String>,
    reexports: &'a BTreeMap<Reexport, WrittenPath>,
}

impl Resolver<'_> {
    /// Adds to `out` the files that `path`, written in module `module`, uses.
    fn resolve(&self, module: &[String], path: &[String], hops: usize, out: &mut BTreeSet<String>) {
        let Some(abs) = self.absolute(module, path) else {
            return;
        };
        // The deepest module the path names.
        let mut deepest = 0;
        for n in 0..=abs.len() {
            if self.modules.contains_key(&abs[..n]) {
                deepest = n;
            } else {
                break;
            }
        }
        let Some(file) = self.modules.get(&abs[..deepest]) else {
            return;
        };
        out.insert(file.clone());
        if hops < 8
            && let Some(next) = abs.get(deepest)
            && let Some((from, target)) =
                self.reexports.get(&(abs[..deepest].to_vec(), next.clone()))
        {
            let mut rest = target.clone();
            rest.extend(abs[deepest + 1..].iter().cloned());
            self.resolve(from, &rest, hops + 1, out);
        }
    }

    /// The path from the crate root, or `None` for a path outside the crate (`std::…`, another
    /// crate, a local name).
    fn absolute(&self, module: &[String], path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?;
        let mut base: Vec<String>;
        let mut rest = &path[1..];
        match first.as_str() {
            "crate" => base = Vec::new(),
            "self" => base = module.to_vec(),
            "super" => {
                base = module.to_vec();
                base.pop()?;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            name => {
                // A relative path: a child module of the current one, or an item it re-exports.
                let mut child = module.to_vec();
                child.push(name.to_owned());
                if !self.modules.contains_key(&child)
                    && !self
                        .reexports
                        .contains_key(&(module.to_vec(), name.to_owned()))
                {
                    return None;
                }
                base = module.to_vec();
                rest = path;
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }
}

/// Pairs of files that use each other, each pair once, sorted.
fn mutual_pairs(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (a, targets) in graph {
        for b in targets {
            if a < b && graph.get(b).is_some_and(|t| t.contains(a)) {
                pairs.push((a.clone(), b.clone()));
            }
        }
    }
    pairs
}

#[cfg(test)]
mod parser_tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    fn graph(files: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        module_graph(&files)
    }

    fn pairs(files: &[(&str, &str)]) -> Vec<(String, String)> {
        mutual_pairs(&graph(files))
    }

    #[test]
    fn use_trees_expand_to_their_leaves() {
        let leaves = parse_use_tree(&tokenize("a::{b, c::d as e, self, f::*, g::{h}}"));
        let got: Vec<(Vec<String>, Option<String>)> =
            leaves.into_iter().map(|l| (l.path, l.name)).collect();
        assert_eq!(
            got,
            vec![
                (s(&["a", "b"]), Some("b".into())),
                (s(&["a", "c", "d"]), Some("e".into())),
                (s(&["a"]), Some("a".into())),
                (s(&["a", "f"]), None),
                (s(&["a", "g", "h"]), Some("h".into())),
            ]
        );
        let leaves = parse_use_tree(&tokenize("::std::fmt"));
        assert_eq!(leaves[0].path, s(&["std", "fmt"]));
    }

    #[test]
    fn comments_and_strings_are_not_code() {
        let code = strip_comments_and_strings(
            "let a = \"crate::x::Y\"; // crate::y\n/* crate::z /* nested */ */ let c = '\"'; \
             let r = r#\"super::q\"#; fn f<'a>(x: &'a str) {}\ncrate::real::f();",
        );
        assert!(
            !code.contains("crate::x") && !code.contains("crate::y"),
            "{code}"
        );
        assert!(
            !code.contains("crate::z") && !code.contains("super::q"),
            "{code}"
        );
        assert!(code.contains("crate::real::f"), "{code}");
        assert!(code.contains("<'a>"), "{code}");
        assert_eq!(code.lines().count(), 3, "{code}");
    }

    #[test]
    fn module_paths_follow_the_file_layout() {
        assert_eq!(module_path("lib.rs"), s(&[]));
        assert_eq!(module_path("main.rs"), s(&[]));
        assert_eq!(module_path("engine/mod.rs"), s(&["engine"]));
        assert_eq!(
            module_path("engine/versions.rs"),
            s(&["engine", "versions"])
        );
        assert_eq!(module_path("measure.rs"), s(&["measure"]));
    }

    #[test]
    fn a_use_and_a_path_in_code_both_count_and_super_resolves_against_the_file() {
        let p = pairs(&[
            ("lib.rs", "mod engine; mod measure;"),
            (
                "engine/mod.rs",
                "mod versions; use crate::measure::Plan; fn f() { versions::go(); }",
            ),
            ("engine/versions.rs", "use super::Engine; impl Engine {}"),
            (
                "measure.rs",
                "impl crate::engine::Engine { fn g(&self) {} }",
            ),
        ]);
        assert_eq!(
            p,
            vec![
                ("engine/mod.rs".into(), "engine/versions.rs".into()),
                ("engine/mod.rs".into(), "measure.rs".into()),
            ]
        );
    }

    #[test]
    fn a_use_through_a_reexport_counts_for_the_reexporting_module_and_the_defining_one() {
        // mod.rs only declares and re-exports: its children may use its re-exports.
        let g = graph(&[
            (
                "lib.rs",
                "mod engine; pub use engine::Engine; pub use error::Error; mod error;",
            ),
            ("error.rs", "pub enum Error {}"),
            (
                "engine/mod.rs",
                "mod state; mod write; pub use state::Engine;",
            ),
            ("engine/state.rs", "use crate::Error; pub struct Engine;"),
            ("engine/write.rs", "use super::Engine; impl Engine {}"),
        ]);
        assert_eq!(mutual_pairs(&g), vec![]);
        let write = &g["engine/write.rs"];
        assert!(
            write.contains("engine/mod.rs") && write.contains("engine/state.rs"),
            "{g:?}"
        );
        assert!(g["engine/state.rs"].contains("error.rs"), "{g:?}");
        assert!(g["engine/state.rs"].contains("lib.rs"), "{g:?}");
        // Siblings that reach each other through the parent's re-exports are a pair.
        let p = pairs(&[
            ("lib.rs", "mod a; mod b; pub use a::A; pub use b::B;"),
            ("a.rs", "use crate::B; pub struct A;"),
            ("b.rs", "use crate::A; pub struct B;"),
        ]);
        assert_eq!(p, vec![("a.rs".into(), "b.rs".into())]);
    }

    #[test]
    fn a_parent_that_uses_its_child_and_is_used_by_it_is_a_pair() {
        let p = pairs(&[
            ("lib.rs", "mod engine;"),
            (
                "engine/mod.rs",
                "mod versions;\npub struct Engine;\nimpl Engine { fn f(&self) { self::versions::plan(); } }",
            ),
            (
                "engine/versions.rs",
                "use super::{Engine, *};\npub(crate) fn plan() {}",
            ),
        ]);
        assert_eq!(
            p,
            vec![("engine/mod.rs".into(), "engine/versions.rs".into())]
        );
    }

    #[test]
    fn inline_test_modules_resolve_super_to_their_own_file() {
        let p = pairs(&[
            ("lib.rs", "mod a; mod b; fn root() {}"),
            (
                "a.rs",
                "use crate::b::x; #[cfg(test)] mod tests { use super::*; fn t() { super::y(); } }",
            ),
            ("b.rs", "pub fn x() {}"),
        ]);
        assert_eq!(p, vec![]);
        let g = graph(&[
            ("lib.rs", "mod a;"),
            ("a.rs", "mod tests { use super::*; }"),
        ]);
        assert!(g["a.rs"].is_empty(), "{g:?}");
    }

    #[test]
    fn outside_paths_and_local_names_are_not_modules() {
        let g = graph(&[
            (
                "lib.rs",
                "mod a; use std::fmt; use serde::Serialize; fn f() { let v = Vec::<u8>::new(); fmt::Debug; }",
            ),
            ("a.rs", "fn g() { String::new(); }"),
        ]);
        assert!(g["lib.rs"].is_empty() && g["a.rs"].is_empty(), "{g:?}");
    }

    #[test]
    fn pub_crate_use_is_a_reexport_not_a_use() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; pub(crate) use a::A;"),
            ("a.rs", "pub struct A;"),
            ("b.rs", "use crate::A;"),
        ]);
        assert!(g["lib.rs"].is_empty(), "{g:?}");
        assert!(
            g["b.rs"].contains("a.rs") && g["b.rs"].contains("lib.rs"),
            "{g:?}"
        );
    }

    #[test]
    fn citations_of_outside_documents_are_found() {
        let text = concat!(
            "// see DESIGN",
            " invariant 2\n",
            "/// The request body (API",
            ".md).\n",
            "/// The request body (docs/http-api.md).\n",
            "// docs/design.md, invariant 2\n",
        );
        let lines: Vec<usize> = outside_citations(text)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(lines, vec![1, 2]);
    }

    #[test]
    fn module_docs_and_test_files_are_recognised() {
        let files = vec![
            ("a.rs".to_owned(), "\n//! A.\nfn a() {}".to_owned()),
            (
                "b.rs".to_owned(),
                "/// not a module doc\nfn b() {}".to_owned(),
            ),
            ("c.rs".to_owned(), String::new()),
        ];
        assert_eq!(files_without_module_doc(&files), vec!["b.rs", "c.rs"]);
        for f in [
            "crates/x/src/engine/tests.rs",
            "crates/x/src/a_tests.rs",
            "tests/it/cli.rs",
            "benches/bm25.rs",
            "fuzz/src/bin/jsonl.rs",
            "crates/quarry-embed/benches/embed.rs",
        ] {
            assert!(is_test_file(f), "{f}");
        }
        for f in [
            "crates/x/src/engine/mod.rs",
            "src/main.rs",
            "crates/x/src/contests.rs",
        ] {
            assert!(!is_test_file(f), "{f}");
        }
    }
}
