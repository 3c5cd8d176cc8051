//! Ingest of documents: walk → read and hash raw bytes (unchanged documents stop here) → extract
//! text → chunk → apply to the engine in batches, each batch one generation. Extraction and
//! chunking run in parallel with rayon; while a batch is read and chunked, the one before is
//! embedded and the one before that committed, each on a thread of its own ([`Committer`]). Bad
//! input never fails the run: every skipped file or line is counted in the summary with its reason.
//!
//! PDF and Word files are read by [`super::binary`], on a thread of their own with a deadline; an
//! encrypted, scanned or damaged one is skipped with its reason (`encrypted`, `no_text_layer`,
//! `malformed_pdf`, `malformed_docx`, `timeout`). Invalid UTF-8 in a text file is decoded lossily
//! (U+FFFD replaces the bad bytes): the document is kept and a warning `invalid_utf8` names the
//! file. A JSONL line that is not valid UTF-8 JSON is skipped as `malformed_jsonl`.

use super::binary::{is_binary, read_binary};
use super::committer::Committer;
use super::extract::{Extracted, FileKind, Record, extract_bytes, format_of, record_document};
use super::summary::{IngestOptions, IngestSummary, Problem, Progress};
use super::walk::{WalkedFile, walk};
use crate::catalog::DocState;
use crate::engine::{Change, Engine};
use crate::error::Result;
use quarry_core::{Chunker, ContentHash, DocFormat, Document};
use rayon::prelude::*;
use serde::Deserialize as _;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Files processed in parallel at a time.
const FILE_GROUP: usize = 256;
/// JSONL lines processed in parallel at a time.
const LINE_GROUP: usize = 2048;
/// The run's first group and first batch hold this many inputs and documents at most, each later
/// one twice the one before (up to [`FILE_GROUP`], [`LINE_GROUP`] and `ingest.batch_docs`): the
/// model starts on the first documents instead of waiting for a whole batch to be chunked.
const FIRST: usize = 64;

/// The next size after `size` of a group or batch that starts at [`FIRST`] and stops at `cap`.
fn doubled(size: usize, cap: usize) -> usize {
    size.saturating_mul(2).min(cap.max(1))
}

/// What reading one input produced.
enum Outcome {
    /// The change, and warnings `(reason, message)` of a document kept anyway.
    Upsert(Change, Vec<(&'static str, String)>),
    Unchanged(String),
    Skipped(Problem, Option<String>),
}

struct Ctx<'a> {
    opts: &'a IngestOptions,
    chunker: &'a Chunker,
    known: &'a HashMap<String, DocState>,
    /// `opts.acl`, checked and normalised.
    default_acl: Vec<String>,
}

impl Ctx<'_> {
    /// Whether the stored document `doc_id` has this content and ACL.
    fn unchanged(&self, doc_id: &str, hash: &ContentHash, acl: &[String]) -> bool {
        self.known
            .get(doc_id)
            .is_some_and(|s| s.content_hash == *hash && s.acl == acl)
    }
}

/// Chunks a document into an upsert.
pub fn upsert(chunker: &Chunker, doc: Document) -> Change {
    let chunks = chunker.chunk(&doc.title, &doc.text, doc.format);
    Change::Upsert(doc, chunks)
}

fn read_file(ctx: &Ctx<'_>, f: &WalkedFile, format: DocFormat) -> Outcome {
    let shown = f.path.display().to_string();
    let skip = |reason: &str, msg: String| {
        Outcome::Skipped(
            Problem::new(shown.clone(), reason, msg),
            Some(f.doc_id.clone()),
        )
    };
    if f.size > ctx.opts.max_file_bytes {
        return skip(
            "too_large",
            format!(
                "{} bytes is over ingest.max_file_bytes ({}); raise the limit to ingest it",
                f.size, ctx.opts.max_file_bytes
            ),
        );
    }
    let bytes = match std::fs::read(&f.path) {
        Ok(b) => b,
        Err(e) => return skip("unreadable", e.to_string()),
    };
    if bytes.len() as u64 > ctx.opts.max_file_bytes {
        return skip(
            "too_large",
            format!("{} bytes is over ingest.max_file_bytes", bytes.len()),
        );
    }
    let binary = is_binary(format);
    if !binary && bytes.contains(&0) {
        return skip("binary", "contains a NUL byte; not a text file".into());
    }
    if !binary && bytes.iter().all(u8::is_ascii_whitespace) {
        return skip("empty", "no text".into());
    }
    let hash = ContentHash::of(&bytes);
    let acl = f.acl.clone().unwrap_or_else(|| ctx.default_acl.clone());
    if ctx.unchanged(&f.doc_id, &hash, &acl) {
        return Outcome::Unchanged(f.doc_id.clone());
    }
    let stem = f
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().replace(['-', '_'], " "))
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let Extracted {
        title,
        text,
        metadata,
        warning,
    } = if binary {
        match read_binary(format, bytes, &stem, ctx.opts.extract_timeout) {
            Ok((extracted, kept_with)) => {
                warnings.extend(kept_with);
                extracted
            }
            Err(u) => return skip(u.reason, u.message),
        }
    } else {
        let (extracted, lossy) = extract_bytes(format, bytes, &stem);
        if lossy {
            warnings.push((
                "invalid_utf8",
                "not valid UTF-8; decoded with U+FFFD replacing the invalid bytes".to_owned(),
            ));
        }
        extracted
    };
    if text.trim().is_empty() {
        return skip("empty", "no visible text after extraction".into());
    }
    let doc = Document {
        doc_id: f.doc_id.clone(),
        title,
        text,
        source: shown.clone(),
        format,
        metadata,
        acl,
        content_hash: hash,
    };
    warnings.extend(warning.map(|w| ("bad_front_matter", w)));
    Outcome::Upsert(upsert(ctx.chunker, doc), warnings)
}

/// Reads one JSONL line (or API record); `file_acl` is the ACL of the file's folder, if any.
fn read_line(
    ctx: &Ctx<'_>,
    source: &str,
    file_acl: Option<&[String]>,
    line_no: u64,
    line: &[u8],
) -> Option<Outcome> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let problem = |reason: &str, msg: String| Problem::new(source, reason, msg).at_line(line_no);
    if line.len() as u64 > ctx.opts.max_file_bytes {
        return Some(Outcome::Skipped(
            problem("too_large", format!("line of {} bytes", line.len())),
            None,
        ));
    }
    let rec: Record = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            return Some(Outcome::Skipped(
                problem("malformed_jsonl", e.to_string()),
                None,
            ));
        }
    };
    if let Err(e) = quarry_core::filter::check_metadata(&rec.metadata) {
        return Some(Outcome::Skipped(
            problem("bad_metadata", format!("record `{}`: {e}", rec.id)),
            Some(rec.id),
        ));
    }
    let hash = record_hash(line, !rec.acl.is_empty());
    let acl = if rec.acl.is_empty() {
        file_acl.map_or_else(|| ctx.default_acl.clone(), <[String]>::to_vec)
    } else {
        match quarry_core::acl::normalize_acl(&rec.acl) {
            Ok(acl) => acl,
            Err(e) => {
                return Some(Outcome::Skipped(
                    problem("bad_acl", format!("record `{}`: {e}", rec.id)),
                    Some(rec.id),
                ));
            }
        }
    };
    if ctx.unchanged(&rec.id, &hash, &acl) {
        return Some(Outcome::Unchanged(rec.id));
    }
    let id = rec.id.clone();
    Some(match record_document(rec, source, hash, acl) {
        Some(doc) => Outcome::Upsert(upsert(ctx.chunker, doc), Vec::new()),
        None => Outcome::Skipped(
            problem("empty", format!("record `{id}` has no title or text")),
            Some(id),
        ),
    })
}

/// Every line of `bytes` through the JSONL reader of an ingest (the same splitting, size, JSON,
/// ACL and empty-record checks, hashing and chunking with `chunker`) into a collection that holds
/// nothing yet: how many lines became upserts and how many were skipped. For the fuzz targets
/// (`fuzz/`), which must find errors counted and never a panic.
#[doc(hidden)]
pub fn read_jsonl_bytes(bytes: &[u8], chunker: &Chunker, max_line_bytes: u64) -> (usize, usize) {
    let opts = IngestOptions {
        max_file_bytes: max_line_bytes,
        ..IngestOptions::default()
    };
    let known = HashMap::new();
    let ctx = Ctx {
        opts: &opts,
        chunker,
        known: &known,
        default_acl: Vec::new(),
    };
    let (mut upserts, mut skipped) = (0, 0);
    for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        match read_line(&ctx, "fuzz.jsonl", None, n as u64 + 1, line) {
            Some(Outcome::Upsert(..)) => upserts += 1,
            Some(Outcome::Skipped(..)) => skipped += 1,
            Some(Outcome::Unchanged(_)) | None => {}
        }
    }
    (upserts, skipped)
}

/// The content hash of a record: blake3 of its line, without its `acl` (an ACL is compared on its
/// own, so a new ACL on the same content is an ACL update, not a new document version).
fn record_hash(line: &[u8], has_acl: bool) -> ContentHash {
    if has_acl && let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(line) {
        map.remove("acl");
        return ContentHash::of(serde_json::Value::Object(map).to_string().as_bytes());
    }
    ContentHash::of(line)
}

/// Accumulates changes and commits them in batches: through a [`Committer`] (embedded and
/// committed on threads of their own while the next batch is read) when it has one, else in the
/// caller's thread.
struct Batcher<'a, 's> {
    engine: &'a Engine,
    opts: &'a IngestOptions,
    changes: Vec<Change>,
    summary: IngestSummary,
    seen: HashSet<String>,
    committer: Option<Committer<'s, 'a>>,
    /// Documents of the batch being gathered: `batch_docs`, or with a committer [`FIRST`] doubled
    /// after each batch up to `batch_docs`.
    limit: usize,
    /// Inputs of the next group read in parallel ([`Batcher::next_group`]).
    group: usize,
}

/// The stored hashes and the chunker of the target collection.
/// The stored document states, the chunker of the target collection, and the checked `--acl`.
fn prepare(
    engine: &Engine,
    opts: &IngestOptions,
) -> Result<(HashMap<String, DocState>, Chunker, Vec<String>)> {
    let default_acl = quarry_core::acl::normalize_acl(&opts.acl)?;
    let known = engine.doc_states(&opts.collection)?;
    let chunker = engine.chunker(&opts.collection)?;
    Ok((known, chunker, default_acl))
}

impl<'a, 's> Batcher<'a, 's> {
    fn new(
        engine: &'a Engine,
        opts: &'a IngestOptions,
        committer: Option<Committer<'s, 'a>>,
    ) -> Self {
        let summary = IngestSummary {
            collection: opts.collection.clone(),
            ..IngestSummary::default()
        };
        Batcher {
            engine,
            opts,
            changes: Vec::new(),
            summary,
            seen: HashSet::new(),
            // Without a committer no model is started early: a documents request is one batch.
            limit: match committer {
                Some(_) => FIRST.min(opts.batch_docs.max(1)),
                None => opts.batch_docs.max(1),
            },
            committer,
            group: FIRST,
        }
    }

    /// How many inputs the next group read in parallel holds, at most `cap`: [`FIRST`] for the
    /// run's first group, twice as many for each later one.
    fn next_group(&mut self, cap: usize) -> usize {
        let size = self.group.min(cap);
        self.group = doubled(self.group, FILE_GROUP.max(LINE_GROUP));
        size
    }

    fn take(&mut self, outcome: Outcome, warn_path: &str) -> Result<()> {
        let id = match &outcome {
            Outcome::Upsert(Change::Upsert(doc, _), _) => Some(doc.doc_id.as_str()),
            Outcome::Unchanged(id) => Some(id.as_str()),
            Outcome::Skipped(_, id) => id.as_deref(),
            Outcome::Upsert(Change::Delete(_), _) => None,
        };
        // The first occurrence of an id in a run wins, so reruns are stable.
        if let Some(id) = id
            && !self.seen.insert(id.to_owned())
        {
            self.summary.problem(Problem::new(
                warn_path,
                "duplicate_doc_id",
                format!("document id `{id}` appeared earlier in this run; the first one is kept"),
            ));
            return Ok(());
        }
        match outcome {
            Outcome::Upsert(change, warnings) => {
                if let Change::Upsert(_, chunks) = &change {
                    for (reason, message) in warnings {
                        self.summary
                            .warning(Problem::new(warn_path, reason, message));
                    }
                    self.summary.chunks += chunks.len() as u64;
                }
                self.changes.push(change);
                if self.changes.len() >= self.limit {
                    self.flush()?;
                    self.limit = doubled(self.limit, self.opts.batch_docs);
                }
            }
            Outcome::Unchanged(_) => self.summary.unchanged += 1,
            Outcome::Skipped(p, _) => self.summary.problem(p),
        }
        Ok(())
    }

    /// Commits the changes gathered: hands them to the committer, or applies them here.
    fn flush(&mut self) -> Result<()> {
        if self.changes.is_empty() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.changes);
        let ended = match &mut self.committer {
            Some(c) => c.commit(changes)?,
            None => vec![self.engine.apply_cancellable(
                &self.opts.collection,
                changes,
                self.opts.embed,
                None,
                self.opts.cancel.as_ref(),
            )?],
        };
        for stats in &ended {
            self.summary.add(stats);
        }
        Ok(())
    }

    /// Commits what is gathered and waits until every batch is committed.
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(c) = self.committer.as_mut() {
            c.wait()?.iter().for_each(|stats| self.summary.add(stats));
        }
        Ok(())
    }
}

/// Ingests `paths` into `opts.collection`.
pub fn ingest(
    engine: &Engine,
    paths: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestSummary> {
    let started = Instant::now();
    let embedded_before = engine.telemetry().document_embedding();
    let walked = walk(paths)?;
    let (known, chunker, default_acl) = prepare(engine, opts)?;
    let ctx = Ctx {
        opts,
        chunker: &chunker,
        known: &known,
        default_acl,
    };
    let bulk = engine.bulk_ingest(&opts.collection);
    let read = std::thread::scope(|scope| {
        let committer = Committer::new(scope, engine, opts);
        let mut b = Batcher::new(engine, opts, Some(committer));
        let jsonl = read_all(&ctx, walked.files, walked.problems, &mut b, progress)?;
        b.finish()?;
        // --sync deletes in the caller's thread, after every batch is committed.
        b.committer = None;
        if opts.sync {
            sync(engine, &walked.roots, &jsonl, &mut b)?;
        }
        Ok(b.summary)
    });
    drop(bulk);
    // After an error too: the batches committed get their BM25 merges and their vector dump.
    let flushed = engine.flush();
    let mut summary = read.and_then(|summary| flushed.map(|()| summary))?;
    summary.seconds = started.elapsed().as_secs_f64();
    let embedded = engine.telemetry().document_embedding();
    summary.tokens_embedded = Some(embedded.tokens.saturating_sub(embedded_before.tokens));
    summary.embed_seconds = Some((embedded.seconds - embedded_before.seconds).max(0.0));
    Ok(summary)
}

/// Reads every walked file into `b`: documents in parallel groups, then the JSONL files (which
/// it returns, for `--sync`).
fn read_all(
    ctx: &Ctx<'_>,
    files: Vec<WalkedFile>,
    problems: Vec<Problem>,
    b: &mut Batcher<'_, '_>,
    progress: &dyn Progress,
) -> Result<Vec<WalkedFile>> {
    for p in problems {
        b.summary.problem(p);
    }
    progress.start(files.iter().map(|f| f.size).sum());

    let mut docs = Vec::new();
    let mut jsonl = Vec::new();
    for f in files {
        match format_of(&f.path) {
            Some(FileKind::Doc(format)) => docs.push((f, format)),
            Some(FileKind::Jsonl) => jsonl.push(f),
            None => {
                progress.advance(f.size, 0);
                let p = Problem::new(
                    f.path.display().to_string(),
                    "unsupported_format",
                    "quarry reads .txt, .md, .markdown, .html, .htm, .pdf, .docx and .jsonl files",
                );
                b.take(Outcome::Skipped(p, Some(f.doc_id.clone())), "")?;
            }
        }
    }
    let mut rest = &docs[..];
    while !rest.is_empty() {
        let (group, later) = rest.split_at(b.next_group(FILE_GROUP).min(rest.len()));
        rest = later;
        let outcomes: Vec<Outcome> = group
            .par_iter()
            .map(|(f, format)| read_file(ctx, f, *format))
            .collect();
        for ((f, _), outcome) in group.iter().zip(outcomes) {
            // a skipped file (too large, binary, empty) is read, but is no document
            let document = !matches!(outcome, Outcome::Skipped(..));
            progress.advance(f.size, u64::from(document));
            b.take(outcome, &f.path.display().to_string())?;
        }
    }
    for f in &jsonl {
        ingest_jsonl(ctx, f, b, progress)?;
    }
    Ok(jsonl)
}

/// Ingests records given as JSON values (the documents API). Every value must parse as a record,
/// else nothing is written and the error names the first bad one (by position, from 0). Each
/// record's content hash is blake3 of its canonical JSON (keys sorted), so resending an unchanged
/// document writes nothing.
pub fn ingest_records(
    engine: &Engine,
    records: Vec<serde_json::Value>,
    opts: &IngestOptions,
    source: &str,
) -> Result<IngestSummary> {
    let started = Instant::now();
    let mut lines = Vec::with_capacity(records.len());
    for (i, value) in records.into_iter().enumerate() {
        if let Err(e) = Record::deserialize(&value) {
            return Err(crate::Error::Input(format!("documents[{i}]: {e}")));
        }
        lines.push(value.to_string().into_bytes());
    }
    let (known, chunker, default_acl) = prepare(engine, opts)?;
    let ctx = Ctx {
        opts,
        chunker: &chunker,
        known: &known,
        default_acl,
    };
    let mut b = Batcher::new(engine, opts, None);
    let outcomes: Vec<Option<Outcome>> = lines
        .par_iter()
        .enumerate()
        .map(|(i, line)| read_line(&ctx, source, None, i as u64 + 1, line))
        .collect();
    for o in outcomes.into_iter().flatten() {
        b.take(o, source)?;
    }
    b.flush()?;
    b.summary.seconds = started.elapsed().as_secs_f64();
    Ok(b.summary)
}

fn ingest_jsonl(
    ctx: &Ctx<'_>,
    f: &WalkedFile,
    b: &mut Batcher<'_, '_>,
    progress: &dyn Progress,
) -> Result<()> {
    let source = f.path.display().to_string();
    let file = match std::fs::File::open(&f.path) {
        Ok(file) => file,
        Err(e) => {
            b.summary
                .problem(Problem::new(source, "unreadable", e.to_string()));
            return Ok(());
        }
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line_no = 0u64;
    loop {
        let size = b.next_group(LINE_GROUP);
        let mut group: Vec<(u64, Vec<u8>)> = Vec::with_capacity(size);
        while group.len() < size {
            let mut buf = Vec::new();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    line_no += 1;
                    group.push((line_no, buf));
                }
                Err(e) => {
                    b.summary.problem(
                        Problem::new(&source, "unreadable", e.to_string()).at_line(line_no + 1),
                    );
                    break;
                }
            }
        }
        if group.is_empty() {
            return Ok(());
        }
        let outcomes: Vec<Option<Outcome>> = group
            .par_iter()
            .map(|(n, line)| read_line(ctx, &source, f.acl.as_deref(), *n, line))
            .collect();
        for ((_, line), outcome) in group.iter().zip(outcomes) {
            let document = matches!(outcome, Some(Outcome::Upsert(..) | Outcome::Unchanged(..)));
            progress.advance(line.len() as u64, u64::from(document));
            if let Some(o) = outcome {
                b.take(o, &source)?;
            }
        }
    }
}

/// `--sync`: deletes documents whose source lies in a walked directory (or is a JSONL file read in
/// this run) and that this run did not see.
fn sync(
    engine: &Engine,
    roots: &[PathBuf],
    jsonl: &[WalkedFile],
    b: &mut Batcher<'_, '_>,
) -> Result<()> {
    let jsonl_sources: HashSet<String> =
        jsonl.iter().map(|f| f.path.display().to_string()).collect();
    let under_root = |source: &str| roots.iter().any(|r| Path::new(source).starts_with(r));
    let gone: Vec<Change> = engine
        .doc_sources(&b.opts.collection)?
        .into_iter()
        .filter(|(id, source)| {
            !b.seen.contains(id) && (under_root(source) || jsonl_sources.contains(source))
        })
        .map(|(id, _)| Change::Delete(id))
        .collect();
    b.changes.extend(gone);
    b.flush()
}
