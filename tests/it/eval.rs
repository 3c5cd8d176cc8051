//! Recorded evaluation runs: `quarry eval --dataset` records a run, `eval history` lists it, and
//! `eval compare` names exactly the queries whose nDCG@10 changed, checked against nDCG computed
//! here from the runs' TREC files.

use crate::{path_str, run, run_json, spawn_serve, tmp, write_tree};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// A small BEIR dataset: 16 documents over a few topics, 8 queries, graded judgments, and one
/// query whose judgments hold no relevant document.
pub(crate) fn dataset(dir: &Path) {
    let topics = [
        ("rust", "memory safety ownership borrow checker"),
        ("search", "inverted index bm25 ranking terms"),
        ("vectors", "embedding cosine nearest neighbour graph"),
        ("storage", "sqlite write ahead log durable commit"),
    ];
    let mut corpus = String::new();
    for (t, (name, words)) in topics.iter().enumerate() {
        for i in 0..4 {
            let extra = topics[(t + i) % topics.len()].1.split(' ').nth(i).unwrap();
            corpus.push_str(&format!(
                "{{\"_id\": \"{name}{i}\", \"title\": \"{name} note {i}\", \"text\": \"{words} {extra} part {i}\"}}\n"
            ));
        }
    }
    let queries = [
        ("q1", "memory safety"),
        ("q2", "bm25 ranking"),
        ("q3", "nearest neighbour embedding"),
        ("q4", "durable commit log"),
        ("q5", "ownership graph"),
        ("q6", "index terms sqlite"),
        ("q7", "cosine part"),
        ("q8", "borrow checker ranking"),
    ];
    let queries_jsonl: String = queries
        .iter()
        .map(|(id, text)| format!("{{\"_id\": \"{id}\", \"text\": \"{text}\"}}\n"))
        .collect();
    let qrels = "query-id\tcorpus-id\tscore\n\
        q1\trust0\t2\nq1\trust1\t1\n\
        q2\tsearch0\t1\nq2\tsearch2\t2\n\
        q3\tvectors1\t1\n\
        q4\tstorage0\t1\nq4\tstorage3\t1\n\
        q5\trust2\t1\nq5\tvectors0\t1\n\
        q6\tsearch1\t1\nq6\tstorage2\t2\n\
        q7\tvectors3\t1\n\
        q8\tnothing\t0\n";
    write_tree(
        dir,
        &[
            ("corpus.jsonl", corpus.as_bytes()),
            ("queries.jsonl", queries_jsonl.as_bytes()),
            ("qrels/test.tsv", qrels.as_bytes()),
        ],
    );
}

/// The judgments of a qrels file (a header line, then query, document, grade).
fn read_qrels(path: &Path) -> BTreeMap<String, HashMap<String, u32>> {
    let mut qrels: BTreeMap<String, HashMap<String, u32>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        qrels
            .entry(c[0].into())
            .or_default()
            .insert(c[1].into(), c[2].parse().unwrap());
    }
    qrels
}

/// nDCG@10 per query of a TREC run file (linear gain, log2 discount), written independently of
/// quarry's metrics.
fn ndcg_from_trec(
    path: &Path,
    qrels: &BTreeMap<String, HashMap<String, u32>>,
) -> BTreeMap<String, f64> {
    let mut runs: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for line in std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
    {
        let c: Vec<&str> = line.split_whitespace().collect();
        runs.entry(c[0].into())
            .or_default()
            .push((c[3].parse().unwrap(), c[2].into()));
    }
    qrels
        .iter()
        .map(|(q, judged)| {
            let mut ranked = runs.get(q).cloned().unwrap_or_default();
            ranked.sort();
            let dcg: f64 = ranked
                .iter()
                .take(10)
                .map(|(rank, d)| *judged.get(d).unwrap_or(&0) as f64 / ((*rank + 1) as f64).log2())
                .sum();
            let mut ideal: Vec<u32> = judged.values().copied().filter(|g| *g > 0).collect();
            ideal.sort_by(|a, b| b.cmp(a));
            let idcg: f64 = ideal
                .iter()
                .take(10)
                .enumerate()
                .map(|(i, g)| *g as f64 / ((i + 2) as f64).log2())
                .sum();
            (q.clone(), if idcg == 0.0 { 0.0 } else { dcg / idcg })
        })
        .collect()
}

#[test]
fn runs_are_recorded_and_a_comparison_names_exactly_the_changed_queries() {
    let ds = tmp();
    dataset(ds.path());
    let data = tmp();
    let out_a = tmp();
    let out_b = tmp();
    let dsp = path_str(ds.path());
    let a = run_json(
        data.path(),
        &[
            "eval",
            "--dataset",
            &dsp,
            "--modes",
            "bm25,hybrid",
            "--fusion",
            "rrf",
            "--out",
            &path_str(out_a.path()),
            "--json",
        ],
    );
    let b = run_json(
        data.path(),
        &[
            "eval",
            "--dataset",
            &dsp,
            "--modes",
            "bm25,hybrid",
            "--fusion",
            "weighted",
            "--alpha",
            "1",
            "--out",
            &path_str(out_b.path()),
            "--json",
        ],
    );
    assert_eq!(a["run_id"], "r1");
    assert_eq!(b["run_id"], "r2");
    // every metric at every cut-off is reported
    for name in ["ndcg@1", "ndcg@100", "map@10", "p@5", "recall@1", "mrr@100"] {
        assert!(a["modes"]["bm25"][name].is_number(), "{name}: {a}");
    }

    let history = run_json(data.path(), &["eval", "history", "--json"]);
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["config"]["fusion"]["method"], "rrf");
    assert_eq!(runs[1]["config"]["fusion"]["method"], "weighted");
    assert_eq!(runs[1]["collection"], a["collection"]);

    let qrels = read_qrels(&ds.path().join("qrels/test.tsv"));
    let cmp = run_json(data.path(), &["eval", "compare", "r1", "r2", "--json"]);
    for mode in ["bm25", "hybrid"] {
        let na = ndcg_from_trec(&out_a.path().join(format!("{mode}.trec")), &qrels);
        let nb = ndcg_from_trec(&out_b.path().join(format!("{mode}.trec")), &qrels);
        let want: BTreeMap<String, f64> = na
            .iter()
            .filter_map(|(q, x)| {
                let d = nb[q] - x;
                (d.abs() > 1e-9).then(|| (q.clone(), d))
            })
            .collect();
        let m = &cmp["modes"][mode];
        let mut got = BTreeMap::new();
        for (list, sign) in [("worse", -1.0), ("better", 1.0)] {
            for q in m[list].as_array().unwrap() {
                let d = q["delta"].as_f64().unwrap();
                assert_eq!(d.signum(), sign, "{mode}: {q}");
                got.insert(q["query"].as_str().unwrap().to_owned(), d);
            }
        }
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{mode}: changed queries"
        );
        for (q, d) in &want {
            assert!((got[q] - d).abs() < 1e-9, "{mode} {q}: {} vs {d}", got[q]);
        }
        let p = m["p_value"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{p}");
        if want.is_empty() {
            assert_eq!(p, 1.0, "{mode}: no change, p = 1");
        }
        assert_eq!(m["queries"], 8);
    }
    // BM25 does not depend on the fusion: nothing changed there
    assert!(cmp["modes"]["bm25"]["worse"].as_array().unwrap().is_empty());
    // the hybrid rankings did change between RRF and vectors only
    let hybrid = &cmp["modes"]["hybrid"];
    assert!(
        !hybrid["worse"].as_array().unwrap().is_empty()
            || !hybrid["better"].as_array().unwrap().is_empty(),
        "{hybrid}"
    );

    // the human form names the runs and the test
    let out = run(
        data.path(),
        &["eval", "compare", "r1", "r2", "--mode", "hybrid"],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("paired randomization test: p = "), "{text}");
    // unknown runs and a missing --dataset are clear errors
    let out = run(data.path(), &["eval", "compare", "r1", "r9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quarry eval history"));
    let out = run(data.path(), &["eval"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dataset"));
}

#[test]
fn golden_sets_evaluate_a_live_collection_as_a_principal() {
    let data = tmp();
    let files = tmp();
    write_tree(
        files.path(),
        &[
            (
                "docs.jsonl",
                b"{\"_id\": \"open\", \"text\": \"solar panels convert light\", \"acl\": [\"public\"]}\n\
                  {\"_id\": \"secret\", \"text\": \"solar roadmap for the board\", \"acl\": [\"group:board\"]}\n\
                  {\"_id\": \"other\", \"text\": \"wind turbines spin\", \"acl\": [\"public\"]}\n",
            ),
            (
                "golden.jsonl",
                b"{\"query\": \"solar roadmap\", \"relevant\": {\"secret\": 2, \"open\": 1}}\n\
                  {\"id\": \"w\", \"query\": \"wind\", \"relevant\": {\"other\": 1}}\n",
            ),
            (
                "bad.jsonl",
                b"{\"query\": \"ok\", \"relevant\": {\"a\": 1}}\n{\"query\": \"bad\", \"relevant\": {\"a\": -1}}\n",
            ),
        ],
    );
    let out = run(
        data.path(),
        &["ingest", &path_str(&files.path().join("docs.jsonl"))],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added = run_json(
        data.path(),
        &[
            "golden",
            "add",
            "smoke",
            &path_str(&files.path().join("golden.jsonl")),
            "--json",
        ],
    );
    assert_eq!(added["queries"], 2);
    // a bad line stores nothing and names the line
    let out = run(
        data.path(),
        &[
            "golden",
            "add",
            "broken",
            &path_str(&files.path().join("bad.jsonl")),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sets = run_json(data.path(), &["golden", "list", "--json"]);
    assert_eq!(sets["golden_sets"].as_array().unwrap().len(), 1);

    let admin = run_json(
        data.path(),
        &["eval", "--golden", "smoke", "--modes", "bm25", "--json"],
    );
    let board = run_json(
        data.path(),
        &[
            "eval", "--golden", "smoke", "--modes", "bm25", "--user", "bea", "--group", "board",
            "--json",
        ],
    );
    let outsider = run_json(
        data.path(),
        &[
            "eval", "--golden", "smoke", "--modes", "bm25", "--user", "olaf", "--json",
        ],
    );
    let ndcg = |r: &serde_json::Value| r["modes"]["bm25"]["ndcg@10"].as_f64().unwrap();
    assert_eq!(admin["queries"], 2);
    // the board member sees what the admin sees; the outsider misses the secret document
    assert!((ndcg(&admin) - ndcg(&board)).abs() < 1e-12);
    assert!(ndcg(&outsider) < ndcg(&admin), "{outsider} vs {admin}");
    let history = run_json(data.path(), &["eval", "history", "--json"]);
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["config"]["source"], "golden");
    assert_eq!(runs[0]["config"]["golden"], "smoke");
    assert_eq!(runs[2]["config"]["principal"]["user"], "olaf");
    // the outsider's run is worse on exactly the query about the secret document
    let cmp = run_json(
        data.path(),
        &[
            "eval",
            "compare",
            runs[0]["id"].as_str().unwrap(),
            runs[2]["id"].as_str().unwrap(),
            "--json",
        ],
    );
    let worse: Vec<&str> = cmp["modes"]["bm25"]["worse"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["query"].as_str().unwrap())
        .collect();
    assert_eq!(worse, ["1"]);

    // a malformed principal is a usage error, before anything runs
    let out = run(
        data.path(),
        &["eval", "--golden", "smoke", "--user", "o laf"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(data.path(), &["golden", "remove", "smoke"]);
    assert!(out.status.success());
    let out = run(data.path(), &["eval", "--golden", "smoke"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("golden set"));
}

/// `GET /v1/collections/{c}/eval/compare` answers what `quarry eval compare --json` prints, for
/// the runs of that collection only.
#[test]
fn the_http_api_compares_two_runs_as_the_cli_does() {
    let ds = tmp();
    dataset(ds.path());
    let data = tmp();
    let dsp = path_str(ds.path());
    for fusion in [
        &["--fusion", "rrf"][..],
        &["--fusion", "weighted", "--alpha", "1"],
    ] {
        let mut args = vec![
            "eval",
            "--dataset",
            &dsp,
            "--modes",
            "bm25,hybrid",
            "--json",
        ];
        args.extend_from_slice(fusion);
        run_json(data.path(), &args);
    }
    let cli = run_json(data.path(), &["eval", "compare", "r1", "r2", "--json"]);
    let cli_hybrid = run_json(
        data.path(),
        &["eval", "compare", "r1", "r2", "--mode", "hybrid", "--json"],
    );
    let collection = cli["a"]["collection"].as_str().unwrap().to_owned();

    let served = spawn_serve(data.path(), &["--addr", "127.0.0.1:0"], &[]);
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| {
        let resp = client.get(format!("{}{path}", served.url)).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().unwrap())
    };
    let base = format!("/v1/collections/{collection}/eval/compare");
    let (status, body) = get(&format!("{base}?base=r1&run=r2"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, cli);
    assert!(body["modes"]["hybrid"]["p_value"].is_number(), "{body}");
    let (status, body) = get(&format!("{base}?base=r1&run=r2&mode=hybrid"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, cli_hybrid);
    // an unknown run, or a run of another collection, is not found
    let (status, body) = get(&format!("{base}?base=r1&run=r9"));
    assert_eq!(status, 404, "{body}");
    let (status, body) = get("/v1/collections/default/eval/compare?base=r1&run=r2");
    assert_eq!(status, 404, "{body}");
    // a mode neither run measured, or a missing run, is a bad request
    let (status, body) = get(&format!("{base}?base=r1&run=r2&mode=vector"));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("no mode in common"), "{body}");
    let (status, body) = get(&format!("{base}?base=r1"));
    assert_eq!(status, 400, "{body}");
}

/// The value of one series (`name{labels}`) in an OpenMetrics text.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn scheduled_eval_sees_a_degraded_collection_and_raises_the_drift_alarm() {
    let data = tmp();
    let files = tmp();
    let mut docs = String::new();
    let mut golden = String::new();
    for (i, (word, text)) in [
        ("glacier", "glacier ice moves slowly down the valley"),
        ("volcano", "volcano lava cools into basalt rock"),
        ("coral", "coral reefs shelter many small fish"),
        ("desert", "desert dunes shift with every storm"),
    ]
    .iter()
    .enumerate()
    {
        docs.push_str(&format!("{{\"_id\": \"d{i}\", \"text\": \"{text}\"}}\n"));
        golden.push_str(&format!(
            "{{\"id\": \"{word}\", \"query\": \"{word}\", \"relevant\": {{\"d{i}\": 1}}}}\n"
        ));
    }
    docs.push_str("{\"_id\": \"noise\", \"text\": \"the weather was mild all week\"}\n");
    write_tree(
        files.path(),
        &[
            ("docs.jsonl", docs.as_bytes()),
            ("golden.jsonl", golden.as_bytes()),
        ],
    );
    let out = run(
        data.path(),
        &["ingest", &path_str(&files.path().join("docs.jsonl"))],
    );
    assert!(out.status.success());
    let out = run(
        data.path(),
        &[
            "golden",
            "add",
            "nightly",
            &path_str(&files.path().join("golden.jsonl")),
        ],
    );
    assert!(out.status.success());

    let served = spawn_serve(
        data.path(),
        &["--addr", "127.0.0.1:0"],
        &[("QUARRY_EVAL__INTERVAL", "1s")],
    );
    let client = reqwest::blocking::Client::new();
    let url = served.url.clone();
    let metrics = || {
        let resp = client.get(format!("{url}/metrics")).send().unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().unwrap()
    };
    let bm25 = r#"quarry_eval_ndcg_at_10{collection="default",golden="nightly",mode="bm25"}"#;
    let alert = r#"quarry_eval_drift_alert{collection="default"}"#;
    let wait_for = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let text = metrics();
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // The run at start-up: every query finds its one relevant document first.
    let text = wait_for("the first scheduled run", &|t| {
        series(t, bm25).is_some() && series(t, alert).is_some()
    });
    assert_eq!(series(&text, bm25), Some(1.0));
    assert_eq!(series(&text, alert), Some(0.0));

    // One query through the API is counted by mode and outcome, and embedded once (scheduled
    // runs embed queries too, so the count is read from a quiet moment: no pass in between).
    let query_calls = r#"quarry_embedding_calls_total{embedder="hash",kind="query"}"#;
    let last_run =
        r#"quarry_eval_last_run_timestamp_seconds{collection="default",golden="nightly"}"#;
    let text_before = metrics();
    let calls_before = series(&text_before, query_calls).unwrap_or(0.0);
    let resp = client
        .post(format!("{url}/v1/collections/default/query"))
        .json(&serde_json::json!({"query": "coral fish", "mode": "hybrid"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = metrics();
    assert_eq!(
        series(
            &text,
            r#"quarry_queries_total{collection="default",mode="hybrid",outcome="ok"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &text,
            r#"quarry_query_duration_seconds_count{collection="default",mode="hybrid"}"#
        ),
        Some(1.0)
    );
    let calls_after = series(&text, query_calls).unwrap_or(0.0);
    if series(&text, last_run) == series(&text_before, last_run) {
        // No scheduled pass ran in between: exactly the API query was embedded.
        assert_eq!(calls_after - calls_before, 1.0, "{text}");
    } else {
        assert!(calls_after > calls_before, "{text}");
    }

    // Degrade: two of the four relevant documents go, so nDCG@10 = (0 + 0 + 1 + 1) / 4.
    for id in ["d0", "d1"] {
        let resp = client
            .delete(format!("{url}/v1/collections/default/documents/{id}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // The alert is set at the end of a pass, after the gauges: wait for both.
    let text = wait_for("a scheduled run after the deletes", &|t| {
        series(t, bm25) == Some(0.5) && series(t, alert) == Some(1.0)
    });
    assert!(
        series(
            &text,
            r#"quarry_eval_ndcg_at_10{collection="default",golden="nightly",mode="hybrid"}"#
        )
        .is_some_and(|v| v < 1.0),
        "{text}"
    );

    let log = served.stop();
    let warning = log
        .lines()
        .find(|l| l.contains("eval drift") && l.contains("bm25") && l.contains("0.5000 in run"))
        .unwrap_or_else(|| panic!("no drift warning in the server log:\n{log}"));
    eprintln!("the server warned: {warning}");
    assert!(warning.contains("WARN"), "{warning}");
    // It names both runs, and they are recorded with those figures.
    let compare = warning
        .split("quarry eval compare ")
        .nth(1)
        .unwrap_or_else(|| panic!("{warning}"));
    let ids: Vec<&str> = compare
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .take(2)
        .collect();
    let history = run_json(data.path(), &["eval", "history", "--json"]);
    let ndcg_of = |id: &str| {
        history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("run {id} is not recorded"))["metrics"]["bm25"]["ndcg@10"]
            .as_f64()
            .unwrap()
    };
    assert_eq!((ndcg_of(ids[0]), ndcg_of(ids[1])), (1.0, 0.5), "{warning}");
}

#[test]
fn recorded_runs_export_as_trec_and_parquet() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    let ds = tmp();
    dataset(ds.path());
    let data = tmp();
    let out = tmp();
    let dsp = path_str(ds.path());
    let eval = run_json(
        data.path(),
        &[
            "eval",
            "--dataset",
            &dsp,
            "--modes",
            "bm25,hybrid",
            "--out",
            &path_str(out.path()),
            "--json",
        ],
    );
    assert_eq!(eval["run_id"], "r1");
    let export = |args: &[&str]| {
        let mut all = vec!["eval", "export", "r1"];
        all.extend_from_slice(args);
        run(data.path(), &all)
    };
    // TREC: the same ranking, rank for rank and score for score, as the file `eval --out` wrote
    // while the run was measured; only the tag names the run.
    let trec = out.path().join("exported.trec");
    let done = export(&["--out", &path_str(&trec), "--mode", "hybrid"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let cols = |p: &Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split_whitespace().take(5).map(str::to_owned).collect())
            .collect()
    };
    let exported = cols(&trec);
    assert!(!exported.is_empty());
    assert_eq!(exported, cols(&out.path().join("hybrid.trec")));
    let tag = std::fs::read_to_string(&trec).unwrap();
    assert!(
        tag.lines().all(|l| l.ends_with(" quarry-r1-hybrid")),
        "{tag}"
    );

    // A TREC file holds one mode; an unknown extension needs --format; an unknown mode is named.
    let e = export(&["--out", &path_str(&out.path().join("x.trec"))]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("--mode"));
    let e = export(&["--out", &path_str(&out.path().join("x.csv"))]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("--format"));
    let e = export(&["--out", &path_str(&trec), "--mode", "vector"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("bm25, hybrid"));
    assert!(!out.path().join("x.trec").exists() && !out.path().join("x.csv").exists());

    // Parquet: one row per mode and query; nDCG@10 per row agrees with nDCG computed here from
    // the TREC files, and the rankings are those of the TREC files.
    let pq = out.path().join("r1.parquet");
    let done = export(&["--out", &path_str(&pq), "--json"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    let file = std::fs::File::open(&pq).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert!(
        reader.schema().metadata()["quarry.run"].contains("\"dataset\""),
        "the run's configuration travels with the file"
    );
    let batches: Vec<_> = reader.build().unwrap().map(Result::unwrap).collect();
    let qrels = read_qrels(&ds.path().join("qrels/test.tsv"));
    let mut rows = 0;
    for b in &batches {
        let col = |name: &str| b.column_by_name(name).unwrap_or_else(|| panic!("{name}"));
        let modes = col("mode").as_string::<i32>();
        let qids = col("query_id").as_string::<i32>();
        let ndcg = col("ndcg@10").as_primitive::<Float64Type>();
        let ranked = col("ranked").as_list::<i32>();
        for i in 0..b.num_rows() {
            let (mode, qid) = (modes.value(i), qids.value(i));
            let want = ndcg_from_trec(&out.path().join(format!("{mode}.trec")), &qrels);
            assert!((ndcg.value(i) - want[qid]).abs() < 1e-9, "{mode} {qid}");
            let trec_ranked: Vec<String> = cols(&out.path().join(format!("{mode}.trec")))
                .into_iter()
                .filter(|c| c[0] == qid)
                .map(|c| c[2].clone())
                .collect();
            let got: Vec<String> = ranked
                .value(i)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_owned())
                .collect();
            assert_eq!(got, trec_ranked, "{mode} {qid}");
            rows += 1;
        }
    }
    assert_eq!(rows, 2 * qrels.len());
    assert_eq!(summary["rows"], rows);
}
