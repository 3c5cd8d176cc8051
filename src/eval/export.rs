//! `quarry eval export RUN --out FILE`: a recorded run for other tools.
//!
//! - `.trec` (or `--format trec`): a TREC run file of one mode, `qid Q0 docno rank score tag`,
//!   for trec_eval, ranx or pytrec_eval. The tag is `quarry-<run>-<mode>`.
//! - `.parquet` (or `--format parquet`): one row per mode and query, with the columns
//!   `run_id`, `collection`, `created_at` (Unix seconds), `mode`, `query_id`, `ranked`
//!   (list of document ids, best first), `scores` (their scores, null for runs recorded before
//!   scores were), `relevant` (the judged-relevant ids) and one float64 column per per-query
//!   metric (`ndcg@10`, `recall@100`, ...). The run's configuration is the file's `quarry.run`
//!   metadata (JSON).
//!
//! The file is written beside its destination and renamed into place, so a failed export leaves
//! no half-written file.

use anyhow::bail;
use arrow_array::builder::{Float64Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use quarry_core::metrics::Metrics;
use quarry_index::eval::{EvalRun, QueryResult, trec_lines};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Trec,
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The run id (see `quarry eval history`).
    pub run: String,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// trec or parquet [default: from the extension of --out].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The mode to export (needed for TREC when the run measured several) [default: every mode].
    #[arg(long)]
    pub mode: Option<String>,
    /// Print the result as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What an export wrote.
#[derive(Debug, serde::Serialize)]
pub(super) struct Exported {
    pub run: String,
    pub out: PathBuf,
    pub format: &'static str,
    pub modes: Vec<String>,
    pub rows: usize,
}

/// Writes `run` as `args` says.
pub(super) fn export(run: &EvalRun, args: &ExportArgs) -> anyhow::Result<Exported> {
    let format = match args.format {
        Some(f) => f,
        None => match args.out.extension().and_then(|e| e.to_str()) {
            Some("trec" | "run" | "txt") => Format::Trec,
            Some("parquet") => Format::Parquet,
            _ => {
                return Err(crate::cmd::UsageError(format!(
                    "cannot tell the format of {} from its extension; name it .trec or .parquet, or pass --format",
                    args.out.display()
                ))
                .into());
            }
        },
    };
    let all = &run.queries;
    let modes: Vec<&String> = match &args.mode {
        Some(m) => match all.get_key_value(m) {
            Some((k, _)) => vec![k],
            None => bail!(
                "run {} did not measure mode {m}; it measured {}",
                run.summary.id,
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        },
        None => all.keys().collect(),
    };
    let (bytes, rows) = match format {
        Format::Trec => {
            let [mode] = modes.as_slice() else {
                return Err(crate::cmd::UsageError(format!(
                    "a TREC run file holds one mode, and run {} measured {}: pick one with --mode",
                    run.summary.id,
                    all.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
                .into());
            };
            let queries = &all[mode.as_str()];
            let mut lines = trec_lines(queries, &format!("quarry-{}-{mode}", run.summary.id));
            lines.push(String::new());
            let n = lines.len() - 1;
            (lines.join("\n").into_bytes(), n)
        }
        Format::Parquet => parquet_bytes(run, &modes)?,
    };
    crate::cmd::write_atomically(&args.out, &bytes)?;
    Ok(Exported {
        run: run.summary.id.clone(),
        out: args.out.clone(),
        format: match format {
            Format::Trec => "trec",
            Format::Parquet => "parquet",
        },
        modes: modes.into_iter().cloned().collect(),
        rows,
    })
}

/// The Parquet file of `modes` of `run`, and its row count.
fn parquet_bytes(run: &EvalRun, modes: &[&String]) -> anyhow::Result<(Vec<u8>, usize)> {
    let s = &run.summary;
    let mut rows: Vec<(&str, &str, &QueryResult)> = Vec::new();
    for mode in modes {
        let queries = &run.queries[mode.as_str()];
        rows.extend(queries.iter().map(|(q, v)| (mode.as_str(), q.as_str(), v)));
    }
    // one column per metric, as every recorded query has every metric
    let metric_names: &[&str] = if rows.is_empty() {
        &[]
    } else {
        &Metrics::NAMES
    };
    let strings = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
    let mut ranked = ListBuilder::new(StringBuilder::new());
    let mut scores = ListBuilder::new(Float64Builder::new());
    let mut relevant = ListBuilder::new(StringBuilder::new());
    for (_, _, v) in &rows {
        for d in &v.ranked {
            ranked.values().append_value(d);
        }
        ranked.append(true);
        match &v.scores {
            Some(list) => {
                for x in list {
                    scores.values().append_option(x.map(f64::from));
                }
                scores.append(true);
            }
            None => scores.append(false),
        }
        for d in &v.relevant {
            relevant.values().append_value(d);
        }
        relevant.append(true);
    }
    let list_of = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    let mut fields = vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("collection", DataType::Utf8, false),
        Field::new("created_at", DataType::Int64, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("query_id", DataType::Utf8, false),
        Field::new("ranked", list_of(DataType::Utf8), false),
        Field::new("scores", list_of(DataType::Float64), true),
        Field::new("relevant", list_of(DataType::Utf8), false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        strings(vec![s.id.as_str(); rows.len()]),
        strings(vec![s.collection.as_str(); rows.len()]),
        Arc::new(Int64Array::from(vec![s.created_at; rows.len()])),
        strings(rows.iter().map(|r| r.0).collect()),
        strings(rows.iter().map(|r| r.1).collect()),
        Arc::new(ranked.finish()),
        Arc::new(scores.finish()),
        Arc::new(relevant.finish()),
    ];
    for name in metric_names {
        fields.push(Field::new(*name, DataType::Float64, true));
        let values: Float64Array = rows.iter().map(|(_, _, v)| v.metrics.get(name)).collect();
        columns.push(Arc::new(values));
    }
    let metadata =
        std::collections::HashMap::from([("quarry.run".to_owned(), s.config.to_string())]);
    let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok((buf, rows.len()))
}
