//! The generated corpus: `n` documents of one chunk each (a title and 40 to 60 words from the
//! [`Vocabulary`]), their vectors from the [`Mixer`], their access levels, and the held-out
//! queries (texts and vectors from the same generators, on streams no document uses). Everything
//! is a function of the seed, so a run with `--reuse` regenerates exactly what was ingested.
//!
//! Access levels nest: document `k` draws `u` uniform in [0, 1) and is readable by `group:all`,
//! and by `group:p50`, `group:p10`, `group:p1`, `group:p0_1` when `u` is below 0.5, 0.1, 0.01,
//! 0.001 ([`FRACTIONS`]); its level is how many of these it is in.
//!
//! Written to disk for the ingest: `docs.jsonl` (BEIR records with `acl`) and `vectors.parquet`
//! (`id`, `vector` as `fixed_size_list<float32>`), in the bring-your-own-vectors format.

use super::draw::{Draw, Purpose};
use super::embeddings::Mixer;
use super::words::Vocabulary;
use anyhow::Context;
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use indicatif::ProgressBar;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The permitted fractions, each readable by one group.
pub(super) const FRACTIONS: [f64; 4] = [0.5, 0.1, 0.01, 0.001];
/// The groups of the access levels: level `t` is readable by `GROUPS[..=t]`.
pub(super) const GROUPS: [&str; 5] = ["all", "p50", "p10", "p1", "p0_1"];
/// Rows per record batch of the vector file.
const PARQUET_BATCH: usize = 8192;

/// The permitted fraction of access level `t` (1 for level 0, everyone).
pub(super) fn fraction(t: usize) -> f64 {
    if t == 0 { 1.0 } else { FRACTIONS[t - 1] }
}

/// The id of document `k`.
pub(super) fn doc_id(k: usize) -> String {
    format!("d{k}")
}

/// The index of the document with id `id`.
pub(super) fn doc_index(id: &str) -> Option<usize> {
    id.strip_prefix('d')?.parse().ok()
}

/// Everything generated, held in memory for the measurement.
pub(super) struct Corpus {
    pub(super) n: usize,
    pub(super) dims: usize,
    /// Each document's access level (0 to 4).
    pub(super) levels: Vec<u8>,
    /// The documents' vectors, one after the other.
    pub(super) vectors: Vec<f32>,
    /// Mean cosine of the documents' vectors to their first base.
    pub(super) mean_cosine: f64,
    pub(super) query_texts: Vec<String>,
    pub(super) query_vectors: Vec<f32>,
}

impl Corpus {
    /// `n` documents' levels and vectors and `queries` queries, under `seed`.
    pub(super) fn generate(
        vocabulary: &Vocabulary,
        mixer: &Mixer<'_>,
        seed: u64,
        n: usize,
        queries: usize,
    ) -> Corpus {
        let levels = (0..n)
            .map(|k| {
                let u = Draw::stream(seed, Purpose::DocAcl, k as u64).unit();
                FRACTIONS.iter().filter(|f| u < **f).count() as u8
            })
            .collect();
        let (vectors, mean_cosine) = mixer.generate(seed, Purpose::DocVector, n);
        let (query_vectors, _) = mixer.generate(seed, Purpose::QueryVector, queries);
        let query_texts = (0..queries)
            .map(|k| vocabulary.query(&mut Draw::stream(seed, Purpose::QueryText, k as u64)))
            .collect();
        Corpus {
            n,
            dims: vectors.len() / n.max(1),
            levels,
            vectors,
            mean_cosine,
            query_texts,
            query_vectors,
        }
    }

    /// Documents readable at access level `t`.
    pub(super) fn permitted(&self, t: usize) -> usize {
        self.levels.iter().filter(|l| usize::from(**l) >= t).count()
    }

    /// The vectors as the engine stores them: it normalises what it loads once more, which can
    /// move a value by a rounding step; the exact scan must compare the same numbers.
    pub(super) fn normalize_as_stored(&mut self) {
        use rayon::prelude::*;
        let dims = self.dims;
        for v in [&mut self.vectors, &mut self.query_vectors] {
            v.par_chunks_mut(dims)
                .for_each(quarry_core::embed::normalize);
        }
    }

    /// Writes `docs.jsonl`: one BEIR record per document, with its ACL.
    pub(super) fn write_documents(
        &self,
        vocabulary: &Vocabulary,
        seed: u64,
        path: &Path,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        #[derive(serde::Serialize)]
        struct Record<'a> {
            #[serde(rename = "_id")]
            id: String,
            title: &'a str,
            text: &'a str,
            acl: Vec<String>,
        }
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        for (k, level) in self.levels.iter().enumerate() {
            let (title, text) =
                vocabulary.document(&mut Draw::stream(seed, Purpose::DocText, k as u64));
            let acl = GROUPS[..=usize::from(*level)]
                .iter()
                .map(|g| format!("group:{g}"))
                .collect();
            let record = Record {
                id: doc_id(k),
                title: &title,
                text: &text,
                acl,
            };
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
            bar.inc(1);
        }
        out.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Writes `vectors.parquet`: columns `id` and `vector` (`fixed_size_list<float32>[dims]`).
    pub(super) fn write_vectors(&self, path: &Path, bar: &ProgressBar) -> anyhow::Result<()> {
        let dims = i32::try_from(self.dims).context("too many dimensions")?;
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("vector", DataType::FixedSizeList(item.clone(), dims), false),
        ]));
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)?;
        for start in (0..self.n).step_by(PARQUET_BATCH) {
            let end = (start + PARQUET_BATCH).min(self.n);
            let ids: Vec<String> = (start..end).map(doc_id).collect();
            let values =
                Float32Array::from(self.vectors[start * self.dims..end * self.dims].to_vec());
            let vectors = FixedSizeListArray::try_new(item.clone(), dims, Arc::new(values), None)?;
            let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(ids)), Arc::new(vectors)];
            writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
            bar.inc((end - start) as u64);
        }
        writer
            .close()
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_levels_nest() {
        assert_eq!(doc_index(&doc_id(123_456)), Some(123_456));
        assert_eq!(doc_index("x1"), None);
        assert_eq!(fraction(0), 1.0);
        assert_eq!(fraction(4), 0.001);
        assert_eq!(GROUPS.len(), FRACTIONS.len() + 1);
    }
}
