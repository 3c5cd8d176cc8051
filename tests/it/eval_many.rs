//! `quarry eval` over several datasets: one table with a row per dataset and mode and the mean
//! over the datasets, and its JSON, whose figures are those of each dataset evaluated alone.

use crate::eval::dataset;
use crate::{path_str, run, run_json, tmp};

#[test]
fn several_datasets_make_one_table_with_their_mean() {
    let (a, b) = (tmp(), tmp());
    dataset(a.path());
    dataset(b.path());
    // the second set judges only its first four queries, so its figures differ
    let qrels = std::fs::read_to_string(a.path().join("qrels/test.tsv")).unwrap();
    let kept: Vec<&str> = qrels
        .lines()
        .filter(|l| !["q5", "q6", "q7", "q8"].iter().any(|q| l.starts_with(q)))
        .collect();
    std::fs::write(b.path().join("qrels/test.tsv"), kept.join("\n") + "\n").unwrap();
    let (pa, pb) = (path_str(a.path()), path_str(b.path()));
    let data = tmp();
    let alone = |p: &str| {
        run_json(
            data.path(),
            &["eval", "--dataset", p, "--modes", "bm25,hybrid", "--json"],
        )
    };
    let (ja, jb) = (alone(&pa), alone(&pb));
    let both = run_json(
        data.path(),
        &[
            "eval",
            "--dataset",
            &pa,
            "--dataset",
            &pb,
            "--modes",
            "bm25,hybrid",
            "--json",
        ],
    );
    let sets = both["datasets"].as_array().unwrap();
    assert_eq!(sets.len(), 2);
    for mode in ["bm25", "hybrid"] {
        let ndcg = |j: &serde_json::Value| j["modes"][mode]["ndcg@10"].as_f64().unwrap();
        assert_eq!(ndcg(&sets[0]), ndcg(&ja), "{mode}");
        assert_eq!(ndcg(&sets[1]), ndcg(&jb), "{mode}");
        assert_ne!(ndcg(&ja), ndcg(&jb), "{mode}: the sets should differ");
        let mean = both["mean"][mode]["ndcg@10"].as_f64().unwrap();
        assert!(
            (mean - (ndcg(&ja) + ndcg(&jb)) / 2.0).abs() < 1e-12,
            "{mode}"
        );
        assert_eq!(both["mean"][mode]["datasets"], 2);
    }
    // a comma list is the same; the text is one table: a row per dataset and mode, and the mean
    let out = run(
        data.path(),
        &[
            "eval",
            "--dataset",
            &format!("{pa},{pb}"),
            "--modes",
            "bm25",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains(" bm25 ")).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[2].starts_with("mean"), "{text}");
    let mean = both["mean"]["bm25"]["ndcg@10"].as_f64().unwrap();
    assert!(rows[2].contains(&format!("{mean:.4}")), "{text}");
    // one collection cannot hold two datasets
    let out = run(
        data.path(),
        &[
            "eval",
            "--dataset",
            &pa,
            "--dataset",
            &pb,
            "--collection",
            "c",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
