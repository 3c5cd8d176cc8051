//! Readers of BEIR-layout datasets (`queries.jsonl`, `qrels/<split>.tsv`): the judged queries
//! of a split as [`Case`]s.

use super::measure::Case;
use crate::error::{Error, Result};
use quarry_core::metrics::Judgments;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The queries of a BEIR `queries.jsonl` (`{"_id", "text"}` per line; an id may be a string or a
/// number), by id.
pub fn read_beir_queries(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::Input(format!("{}: not JSON: {e}", at())))?;
        let id = match &v["_id"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let (Some(id), Some(q)) = (id, v["text"].as_str()) else {
            return Err(Error::Input(format!(
                "{}: a query needs `_id` (a string or a number) and `text`",
                at()
            )));
        };
        out.insert(id, q.to_owned());
    }
    Ok(out)
}

/// The judgments of a BEIR qrels file (`query-id<TAB>corpus-id<TAB>score`, a header line
/// first), by query id; negative scores count as 0.
pub fn read_beir_qrels(path: &Path) -> Result<BTreeMap<String, Judgments>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out: BTreeMap<String, Judgments> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
        let grade = cols.get(2).and_then(|g| g.parse::<i64>().ok());
        let (3, Some(grade)) = (cols.len(), grade) else {
            if i == 0 {
                continue; // the header
            }
            return Err(Error::Input(format!(
                "{}:{}: expected query-id, corpus-id and a whole-number score separated by tabs",
                path.display(),
                i + 1
            )));
        };
        out.entry(cols[0].to_owned())
            .or_default()
            .insert(cols[1].to_owned(), grade.max(0) as u32);
    }
    Ok(out)
}

/// The judged queries of a BEIR split: `qrels/<split>.tsv` with the texts of `queries.jsonl`,
/// in query-id order. A judged query missing from `queries.jsonl` is an error.
pub fn read_beir_cases(dir: &Path, split: &str) -> Result<Vec<Case>> {
    let queries_path = dir.join("queries.jsonl");
    let texts = read_beir_queries(&queries_path)?;
    read_beir_qrels(&dir.join("qrels").join(format!("{split}.tsv")))?
        .into_iter()
        .map(|(id, judged)| {
            let text = texts.get(&id).cloned().ok_or_else(|| {
                Error::Input(format!(
                    "query {id} of qrels/{split}.tsv is not in {}",
                    queries_path.display()
                ))
            })?;
            Ok(Case { id, text, judged })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beir_files_are_read_with_numeric_ids_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("qrels")).unwrap();
        std::fs::write(
            d.join("queries.jsonl"),
            "{\"_id\": 7, \"text\": \"seven\"}\n\n{\"_id\": \"b\", \"text\": \"bee\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("qrels/test.tsv"),
            "query-id\tcorpus-id\tscore\n7\tx\t2\nb\ty\t-1\n",
        )
        .unwrap();
        let cases = read_beir_cases(d, "test").unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(
            (cases[0].id.as_str(), cases[0].text.as_str()),
            ("7", "seven")
        );
        assert_eq!(cases[1].judged["y"], 0, "negative grades count as 0");

        std::fs::write(d.join("qrels/bad.tsv"), "h\th\th\n7\tx\n").unwrap();
        let e = read_beir_cases(d, "bad").unwrap_err().to_string();
        assert!(e.contains("bad.tsv:2"), "{e}");
        std::fs::write(d.join("qrels/orphan.tsv"), "7\tx\t1\nzz\ty\t1\n").unwrap();
        let e = read_beir_cases(d, "orphan").unwrap_err().to_string();
        assert!(e.contains("query zz"), "{e}");
        std::fs::write(d.join("queries.jsonl"), "{\"_id\": [1], \"text\": \"x\"}\n").unwrap();
        let e = read_beir_queries(&d.join("queries.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("queries.jsonl:1"), "{e}");
        assert!(read_beir_cases(d, "missing").is_err());
    }
}
