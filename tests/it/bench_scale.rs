//! `quarry bench scale`: a small run end to end (without `QUARRY_DATASETS`, so the synthetic words
//! and vectors; the hash embedder; a cheap graph) and its JSON report; bad flags and data
//! directories refused with exit 2.

use crate::{quarry, run, tmp, write_tree};
use serde_json::Value;

/// The headline keys of the report (docs/cli.md, "quarry bench scale").
const KEYS: [&str; 9] = [
    "chunks",
    "build_seconds",
    "recall_at_10",
    "vector_qps",
    "hybrid_p50_ms",
    "hybrid_p99_ms",
    "rss_bytes",
    "restart_seconds",
    "filtered",
];

fn number(r: &Value, key: &str) -> f64 {
    r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number: {r}"))
}

#[test]
fn a_small_scale_bench_reports_every_figure() {
    let out = quarry()
        // The debug build inserts into the graph slowly; below 4096 vectors queries scan anyway.
        .env("QUARRY_VECTOR__M", "4")
        .env("QUARRY_VECTOR__EF_CONSTRUCTION", "8")
        .args([
            "bench",
            "scale",
            "--chunks",
            "3000",
            "--queries",
            "50",
            "--reingest",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in KEYS {
        assert!(r.get(key).is_some(), "no `{key}`: {r}");
    }
    assert_eq!(r["chunks"], 3000);
    assert!(
        r["words"].as_str().unwrap().starts_with("synthetic Zipf"),
        "{r}"
    );
    assert!(
        r["vectors"]
            .as_str()
            .unwrap()
            .starts_with("synthetic clusters"),
        "{r}"
    );
    assert!(
        (number(&r, "vector_mean_cosine") - 0.85).abs() < 0.02,
        "{r}"
    );
    // Below vector.exact_threshold (4096) the engine scans every vector: exactly the oracle.
    assert_eq!(number(&r, "recall_at_10"), 1.0, "{r}");
    for key in [
        "build_seconds",
        "vector_qps",
        "restart_seconds",
        "rss_bytes",
    ] {
        assert!(number(&r, key) > 0.0, "`{key}`: {r}");
    }
    assert!(number(&r, "rss_peak_bytes") >= number(&r, "rss_bytes"));
    let (p50, p99) = (number(&r, "hybrid_p50_ms"), number(&r, "hybrid_p99_ms"));
    assert!(p50 > 0.0 && p50 <= p99, "{r}");
    assert_eq!(r["model_calls"], 0, "no model runs: {r}");

    let filtered = r["filtered"].as_array().unwrap();
    let fractions: Vec<f64> = filtered
        .iter()
        .map(|f| number(f, "permitted_fraction"))
        .collect();
    assert_eq!(fractions, [1.0, 0.5, 0.1, 0.01, 0.001]);
    let mut docs_before = u64::MAX;
    for f in filtered {
        let recall = number(f, "recall_at_10");
        assert!((0.0..=1.0).contains(&recall), "{f}");
        assert_eq!(recall, 1.0, "small permitted sets are scanned exactly: {f}");
        assert!(number(f, "p99_ms") > 0.0, "{f}");
        let docs = f["permitted_docs"].as_u64().unwrap();
        assert!(docs <= docs_before, "the permitted sets nest: {r}");
        docs_before = docs;
    }
    assert_eq!(filtered[0]["permitted_docs"], 3000);

    let cells = r["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3 * 5 * 2, "modes × fractions × client threads");
    for c in cells {
        assert_eq!(c["queries"], 50, "{c}");
        assert!(number(c, "p50_ms") <= number(c, "p99_ms"), "{c}");
        assert!(number(c, "qps") > 0.0, "{c}");
    }
    let sizes = &r["sizes"];
    let parts: f64 = ["catalog_bytes", "bm25_bytes", "vectors_bytes"]
        .iter()
        .map(|k| {
            let n = number(sizes, k);
            assert!(n > 0.0, "{k}: {sizes}");
            n
        })
        .sum();
    assert!(number(sizes, "total_bytes") >= parts, "{sizes}");
    let stages: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"ingest documents") && stages.contains(&"ingest vectors"));
    // --reingest: the same inputs again change nothing (the bench fails otherwise), timed
    assert!(stages.contains(&"re-ingest documents") && stages.contains(&"re-ingest vectors"));
    assert!(number(&r, "reingest_seconds") > 0.0, "{r}");
    assert!(
        r.get("data_dir").is_none(),
        "the temporary data dir is removed: {r}"
    );
}

#[test]
fn bad_flags_and_data_dirs_exit_2_and_say_which() {
    let data = tmp();
    let usage = |args: &[&str], needle: &str| {
        let out = run(data.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    usage(&["bench", "scale", "--chunks", "0"], "--chunks");
    usage(
        &["bench", "scale", "--chunks", "10", "--queries", "0"],
        "--queries",
    );
    usage(&["bench", "scale"], "--chunks");
    usage(
        &["bench", "scale", "--chunks", "10", "--reuse"],
        "no catalog",
    );
    // A data directory that holds anything is not built over.
    write_tree(data.path(), &[("in/a.txt", b"alpha")]);
    usage(&["bench", "scale", "--chunks", "10"], "not empty");
    let docs = data.path().join("in");
    let ingested = run(data.path(), &["ingest", docs.to_str().unwrap()]);
    assert!(ingested.status.success());
    usage(&["bench", "scale", "--chunks", "10"], "--reuse");
    usage(
        &["bench", "scale", "--chunks", "10", "--reuse"],
        "not built by `quarry bench scale`",
    );
    // --reuse without a data directory has nothing to reuse.
    let out = quarry()
        .args(["bench", "scale", "--chunks", "10", "--reuse"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reuse needs --data-dir"));
}

/// The bench writes the configuration from its file into the data directory, without the
/// environment's overrides: those reach its child processes through their environment, so they
/// hold for the run that sets them, and a later `--reuse` run without them does not read them.
#[test]
fn environment_overrides_are_not_written_into_the_data_directory() {
    let data = tmp();
    let bench = [
        "bench",
        "scale",
        "--chunks",
        "300",
        "--queries",
        "5",
        "--json",
    ];
    let cheap = [
        ("QUARRY_VECTOR__M", "4"),
        ("QUARRY_VECTOR__EF_CONSTRUCTION", "8"),
    ];
    let ef_search = [cheap.as_slice(), &[("QUARRY_VECTOR__EF_SEARCH", "33")]].concat();
    let out = crate::run_env(data.path(), &bench, &ef_search);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(data.path().join("quarry.toml")).unwrap();
    let written: toml::Table = toml::from_str(&written).unwrap();
    let vector = written["vector"].as_table().unwrap();
    for (key, overridden) in [("m", 4), ("ef_construction", 8), ("ef_search", 33)] {
        let value = vector[key].as_integer().unwrap();
        assert_ne!(value, overridden, "{key} was written from the environment");
    }
    // the hash embedder came from the environment too: a --reuse run without it reads the
    // file's embedder, and the bench's manifest refuses it rather than measuring another one
    let reuse = [bench.as_slice(), &["--reuse"]].concat();
    let out = crate::quarry()
        .env_remove("QUARRY_EMBEDDER")
        .arg("--data-dir")
        .arg(data.path())
        .args(&reuse)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("embedder hash") && stderr.contains("embedder local"),
        "{stderr}"
    );
    let out = crate::run_env(data.path(), &reuse, &cheap);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A configuration file that is valid only with the environment's settings is refused with
/// exit 2 and a message that says so, since the bench writes the file's settings alone.
#[test]
fn a_file_valid_only_with_the_environment_is_refused() {
    let data = tmp();
    let file = "[embedders.remote]\nprovider = \"openai\"\nmodel = \"m\"\n";
    std::fs::write(data.path().join("quarry.toml"), file).unwrap();
    let bench = ["bench", "scale", "--chunks", "10"];
    let url = ("QUARRY_EMBEDDERS__REMOTE__BASE_URL", "http://127.0.0.1:9");
    let out = crate::run_env(data.path(), &bench, &[url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid without them") && stderr.contains("base_url"),
        "{stderr}"
    );
    // with the setting in the file, the bench gets past the configuration (to the data
    // directory, which holds a file and is not built over)
    let file = format!("{file}base_url = \"http://127.0.0.1:9\"\n");
    std::fs::write(data.path().join("quarry.toml"), file).unwrap();
    let stderr = String::from_utf8_lossy(&crate::run(data.path(), &bench).stderr).into_owned();
    assert!(stderr.contains("not empty"), "{stderr}");
}
