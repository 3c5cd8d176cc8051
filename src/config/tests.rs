//! Tests of configuration loading: sources and their precedence, defaults, and the checks.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The variables of the datasets folder, the benches and the load test are not config keys, so
/// exporting them leaves every `quarry` command working; a look-alike key is still rejected.
#[test]
fn dataset_bench_and_load_test_variables_are_not_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(
        None,
        dir.path(),
        env(&[
            ("QUARRY_DATASETS", "/data/beir"),
            ("QUARRY_BENCH_DATA_DIR", "/data/bench"),
            ("QUARRY_BENCH_DOCS", "1000"),
            ("QUARRY_LOAD_SECS", "30"),
            ("QUARRY_LOAD_IDLE_SECS", "5"),
            ("QUARRY_LOAD_NEW_DOCS", "100"),
            ("QUARRY_LOAD_EMBEDDER", "hash"),
            ("QUARRY_CHUNK__MAX_TOKENS", "64"),
        ]),
    )
    .unwrap();
    assert_eq!(c.chunk.max_tokens, 64);
    assert_eq!(c.query, QueryConfig::default());
    // A variable naming no setting (a look-alike, or QUARRY_HOME set by another tool) is
    // ignored with a warning; one naming a section is a key of it, refused when unknown.
    let c = load(
        None,
        dir.path(),
        env(&[("QUARRY_DATASET", "/data/beir"), ("QUARRY_HOME", "/opt/q")]),
    )
    .unwrap();
    assert_eq!(c, Config::default());
    let err = load(None, dir.path(), env(&[("QUARRY_CHUNK__MAX_TOKNS", "9")]))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(err.contains("max_tokns"), "{err}");
}

/// `[log] format` (or `QUARRY_LOG__FORMAT`) is text or json; another value names the key.
#[test]
fn log_format_is_text_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    std::fs::write(&file, "[log]\nformat = \"json\"\n").unwrap();
    let c = load(Some(&file), dir.path(), env(&[])).unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
    let c = load(
        Some(&file),
        dir.path(),
        env(&[("QUARRY_LOG__FORMAT", "text")]),
    )
    .unwrap();
    assert_eq!(c.log.format, LogFormat::Text);
    std::fs::write(&file, "[log]\nformat = \"yaml\"\n").unwrap();
    let err = format!("{:#}", load(Some(&file), dir.path(), env(&[])).unwrap_err());
    assert!(
        err.contains("log.format") && err.contains("q.toml"),
        "{err}"
    );
    let (_, warnings) = load_reporting(None, dir.path(), env(&[("QUARRY_HOME", "/x")])).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("QUARRY_HOME"), "{warnings:?}");
}

/// A refused value is named by its key and by where it came from: the file, or the variable.
#[test]
fn errors_name_the_key_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    std::fs::write(&file, "[query]\ntop_k = \"ten\"\n").unwrap();
    let err = format!("{:#}", load(Some(&file), dir.path(), env(&[])).unwrap_err());
    assert!(
        err.contains("q.toml") && err.contains("query.top_k"),
        "{err}"
    );
    std::fs::write(&file, "[chunk]\nmax_tokens = 100\noverlap = 10\n").unwrap();
    let vars = env(&[
        ("QUARRY_SERVER__ADDR", "0.0.0.0:1"),
        ("QUARRY_CHUNK__OVERLAP", "500"),
    ]);
    let err = format!("{:#}", load(Some(&file), dir.path(), vars).unwrap_err());
    assert!(
        err.contains("environment variable QUARRY_CHUNK__OVERLAP") && err.contains("chunk.overlap"),
        "{err}"
    );
    assert!(!err.contains("q.toml"), "{err}");
    let vars = env(&[("QUARRY_INGEST__BATCH_DOCS", "many")]);
    let err = format!("{:#}", load(None, dir.path(), vars).unwrap_err());
    assert!(
        err.contains("QUARRY_INGEST__BATCH_DOCS") && err.contains("ingest.batch_docs"),
        "{err}"
    );
    let vars = env(&[("QUARRY_QUERY__FUSION", "{method = \"rrf\", k = -3}")]);
    let err = format!("{:#}", load(None, dir.path(), vars).unwrap_err());
    assert!(err.contains("query.fusion.k: -3"), "{err}");
}

#[test]
fn file_then_env_precedence_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    std::fs::write(
        &file,
        "[chunk]\nmax_tokens = 100\noverlap = 10\n[server]\naddr = \"0.0.0.0:1\"\n",
    )
    .unwrap();
    let c = load(
        Some(&file),
        dir.path(),
        env(&[("QUARRY_CHUNK__MAX_TOKENS", "64"), ("HOME", "/x")]),
    )
    .unwrap();
    assert_eq!(c.chunk.max_tokens, 64);
    assert_eq!(c.chunk.overlap, 10);
    assert_eq!(c.server.addr, "0.0.0.0:1");
    assert_eq!(c.query, QueryConfig::default());

    std::fs::write(&file, "[chunk]\nmax_tokenz = 1\n").unwrap();
    let err = load(Some(&file), dir.path(), env(&[]))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(err.contains("max_tokenz"), "{err}");
    let err = load(None, dir.path(), env(&[("QUARRY_SERVER__PORT", "1")]))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(err.contains("port"), "{err}");
    let err = load(None, dir.path(), env(&[("QUARRY_CHUNK__OVERLAP", "999")]))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(err.contains("chunk.overlap"), "{err}");
}

#[test]
fn eval_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(None, dir.path(), env(&[("QUARRY_EVAL__INTERVAL", "90s")])).unwrap();
    assert_eq!(
        c.eval.interval().unwrap(),
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(
        c.eval.principal().unwrap(),
        quarry_core::Principal::local_admin()
    );
    for (key, value, says) in [
        ("QUARRY_EVAL__INTERVAL", "soon", "eval.interval"),
        ("QUARRY_EVAL__INTERVAL", "10ms", "at least 1s"),
        ("QUARRY_EVAL__ALERT_DROP", "1.5", "eval.alert_drop"),
        ("QUARRY_EVAL__WINDOW", "0", "eval.window"),
        ("QUARRY_EVAL__TOP_K", "0", "eval.top_k"),
        (
            "QUARRY_EVAL__GROUPS",
            "[\"eng\"]",
            "eval.groups needs eval.user",
        ),
        ("QUARRY_EVAL__USER", "\"a b\"", "eval.user"),
        (
            "QUARRY_REINDEX__ON_MODEL_CHANGE",
            "sometimes",
            "expected `auto` or `manual`",
        ),
        (
            "QUARRY_REINDEX__CANARY_INTERVAL",
            "often",
            "reindex.canary_interval",
        ),
        (
            "QUARRY_REINDEX__MAX_NDCG_DROP",
            "2",
            "reindex.max_ndcg_drop",
        ),
        (
            "QUARRY_REINDEX__CANARY_MIN_COSINE",
            "1.5",
            "reindex.canary_min_cosine",
        ),
    ] {
        let err = format!(
            "{:#}",
            load(None, dir.path(), env(&[(key, value)])).unwrap_err()
        );
        assert!(err.contains(says), "{key}={value}: {err}");
    }
    let c = load(
        None,
        dir.path(),
        env(&[
            ("QUARRY_EVAL__USER", "alice"),
            ("QUARRY_EVAL__GROUPS", "[\"eng\"]"),
        ]),
    )
    .unwrap();
    let p = c.eval.principal().unwrap();
    assert_eq!(
        (p.user.as_str(), p.groups.clone()),
        ("alice", vec!["eng".to_owned()])
    );
}

#[test]
fn defaults_without_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load(None, dir.path(), env(&[])).unwrap(), Config::default());
}

/// The property-based fuzz harness of the configuration loader (`quarry.toml` and the
/// `QUARRY_*` variables): files made of the real sections and keys with values of every TOML
/// type (out of range, negative, huge, non-finite, empty), and arbitrary text, give a
/// configuration or an error, never a panic. The loader lives in the binary, so the AFL++
/// targets in `fuzz/` cannot link it. 256 cases by default;
/// `PROPTEST_CASES=100000 cargo test --release --bin quarry config::tests::fuzz::` for a long run.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[(&str, &[&str])] = &[
        ("", &["embedder"]),
        (
            "chunk",
            &["max_tokens", "overlap", "sizer", "context_chars"],
        ),
        ("bm25", &["k1", "b", "k3"]),
        (
            "vector",
            &[
                "m",
                "ef_construction",
                "ef_search",
                "exact_threshold",
                "rebuild_tombstone_ratio",
                "filter_exact_fraction",
            ],
        ),
        ("ingest", &["max_file_bytes", "batch_docs", "embed_batch"]),
        ("log", &["format"]),
        (
            "server",
            &[
                "addr",
                "body_limit_bytes",
                "request_timeout_ms",
                "shutdown_grace_ms",
                "max_batch_queries",
                "max_concurrent_queries",
            ],
        ),
        (
            "query",
            &[
                "top_k",
                "mode",
                "group_by",
                "embed_timeout_ms",
                "embed_cache_entries",
            ],
        ),
        ("query.fusion", &["method", "k", "alpha"]),
        (
            "embedders.e",
            &[
                "provider",
                "model",
                "model_dir",
                "base_url",
                "api_key_env",
                "dimensions",
                "batch_size",
                "max_concurrency",
                "timeout_ms",
                "max_retries",
            ],
        ),
        ("auth", &["default_acl"]),
        (
            "[auth.api_keys]",
            &[
                "key_sha256",
                "key_env",
                "user",
                "groups",
                "role",
                "id",
                "not_after",
            ],
        ),
        (
            "auth.jwt",
            &[
                "hs256_secret_env",
                "rs256_public_key_file",
                "jwks_file",
                "jwks_reload_secs",
                "issuer",
                "audience",
                "leeway_secs",
                "groups_claim",
                "role_claim",
            ],
        ),
        (
            "eval",
            &[
                "interval",
                "alert_drop",
                "window",
                "top_k",
                "user",
                "groups",
            ],
        ),
        (
            "reindex",
            &[
                "on_model_change",
                "max_ndcg_drop",
                "canary_min_cosine",
                "keep_versions",
                "canary_interval",
            ],
        ),
    ];

    fn value() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just(String::new()),
            "[a-z:_ ./-]{0,12}",
            Just("local".to_owned()),
            Just("hash".to_owned()),
            Just("rrf".to_owned()),
            Just("weighted".to_owned()),
            Just("group:eng".to_owned()),
            Just("1s".to_owned()),
            Just("0ms".to_owned()),
            Just("18446744073709551616s".to_owned()),
            any::<String>(),
        ];
        let scalar = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            (0i64..5000).prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            prop_oneof![
                Just("nan"),
                Just("inf"),
                Just("-inf"),
                Just("-0.0"),
                Just("1e308")
            ]
            .prop_map(str::to_owned),
            any::<bool>().prop_map(|b| b.to_string()),
            word.clone()
                .prop_map(|w| toml::Value::String(w).to_string()),
        ];
        prop_oneof![
            4 => scalar.clone(),
            1 => prop::collection::vec(scalar, 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
            1 => word.prop_map(|w| format!("{{ method = \"rrf\", k = {} }}", w.len())),
        ]
    }

    fn config_text() -> impl Strategy<Value = String> {
        let entry = (0..KEYS.len(), any::<prop::sample::Index>(), value());
        prop_oneof![
            4 => prop::collection::vec(entry, 0..12).prop_map(|entries| {
                let mut text = String::new();
                for (section, key, value) in entries {
                    let (name, keys) = KEYS[section];
                    let key = key.get(keys);
                    // `[[auth.api_keys]]` is written `[` + "[auth.api_keys]" + `]`
                    if !name.is_empty() {
                        text.push_str(&format!("[{name}]\n"));
                    }
                    text.push_str(&format!("{key} = {value}\n"));
                }
                text
            }),
            1 => any::<String>(),
        ]
    }

    fn env_vars() -> impl Strategy<Value = Vec<(String, String)>> {
        let entry = (0..KEYS.len(), any::<prop::sample::Index>(), value());
        prop::collection::vec(entry, 0..3).prop_map(|entries| {
            entries
                .into_iter()
                .filter(|(section, _, _)| !KEYS[*section].0.starts_with('['))
                .map(|(section, key, value)| {
                    let (name, keys) = KEYS[section];
                    let mut var = String::from("QUARRY_");
                    for part in name.split('.').filter(|p| !p.is_empty()) {
                        var.push_str(&part.to_ascii_uppercase());
                        var.push_str("__");
                    }
                    var.push_str(&key.get(keys).to_ascii_uppercase());
                    (var, value)
                })
                .collect()
        })
    }

    /// The generator reaches past the parser: some of what it makes is a valid configuration,
    /// so the checks after parsing are driven too.
    #[test]
    fn fuzz_inputs_include_valid_configurations() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("quarry.toml");
        let (mut valid, n) = (0, 2000);
        for _ in 0..n {
            let text = config_text().new_tree(&mut runner).unwrap().current();
            std::fs::write(&file, &text).unwrap();
            valid += usize::from(load(Some(&file), dir.path(), Vec::new()).is_ok());
        }
        eprintln!("{valid} of {n} generated files are valid configurations");
        assert!(valid * 50 >= n, "{valid} of {n}");
        assert!(valid * 2 <= n, "{valid} of {n}");
    }

    proptest! {
        #[test]
        fn fuzz_config_files_and_variables_never_panic(text in config_text(), vars in env_vars()) {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("quarry.toml");
            std::fs::write(&file, &text).unwrap();
            // A configuration or an error; a panic fails the case.
            if let Ok(c) = load(Some(&file), dir.path(), vars) {
                prop_assert!((1..=quarry_core::MAX_TOP_K).contains(&c.query.top_k));
                prop_assert!(c.ingest.batch_docs >= 1);
            }
        }
    }
}

#[test]
fn reranker_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(None, dir.path(), env(&[])).unwrap();
    assert_eq!(
        c.reranker.options().map(|o| o.url),
        None,
        "no reranker by default"
    );
    let c = load(
        None,
        dir.path(),
        env(&[
            ("QUARRY_RERANKER__URL", "http://127.0.0.1:8080/rerank"),
            ("QUARRY_RERANKER__FORMAT", "tei"),
            ("QUARRY_RERANKER__TIMEOUT_MS", "500"),
        ]),
    )
    .unwrap();
    let o = c.reranker.options().unwrap();
    assert_eq!(o.format, quarry_embed::RerankFormat::Tei);
    assert_eq!(o.timeout, std::time::Duration::from_millis(500));
    assert_eq!((o.max_retries, o.max_top_n), (2, 100));
    let url = ("QUARRY_RERANKER__URL", "http://127.0.0.1:8080/rerank");
    for (vars, says) in [
        (
            vec![("QUARRY_RERANKER__URL", "localhost:8080")],
            "reranker.url",
        ),
        (
            vec![url, ("QUARRY_RERANKER__FORMAT", "jina")],
            "`cohere` or `tei`",
        ),
        (
            vec![url, ("QUARRY_RERANKER__MAX_TOP_N", "0")],
            "reranker.max_top_n",
        ),
        (
            vec![url, ("QUARRY_RERANKER__TIMEOUT_MS", "0")],
            "reranker.timeout_ms",
        ),
        (vec![url, ("QUARRY_RERANKER__TOP_N", "5")], "top_n"),
        (vec![("QUARRY_RERANKER__MODEL", "m")], "`url` is not set"),
    ] {
        let e = format!("{:#}", load(None, dir.path(), env(&vars)).unwrap_err());
        assert!(e.contains(says), "{vars:?}: {e}");
    }
}

#[test]
fn bm25_parameters_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(None, dir.path(), env(&[])).unwrap();
    assert_eq!(c.bm25, quarry_core::Bm25Params::default());
    let file = dir.path().join("q.toml");
    std::fs::write(&file, "[bm25]\nk1 = 0.9\nb = 0.4\n").unwrap();
    let c = load(Some(&file), dir.path(), env(&[("QUARRY_BM25__K3", "0")])).unwrap();
    assert_eq!(c.bm25, quarry_core::Bm25Params::new(0.9, 0.4, 0.0).unwrap());
    let err = format!(
        "{:#}",
        load(None, dir.path(), env(&[("QUARRY_BM25__B", "1.5")])).unwrap_err()
    );
    assert!(
        err.contains("bm25.b") && err.contains("QUARRY_BM25__B"),
        "{err}"
    );
    std::fs::write(&file, "[bm25]\nk2 = 1\n").unwrap();
    assert!(load(Some(&file), dir.path(), env(&[])).is_err());
}

/// The server's two bounds: read from the file and the environment (the environment wins), each
/// refused outside its range with the key and the range, and the slot default two per core.
#[test]
fn server_bounds_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c = load(None, dir.path(), env(&[])).unwrap();
    assert_eq!(c.server.max_concurrent_queries, 2 * cores);
    assert_eq!(c.server.max_batch_queries, 32);
    std::fs::write(
        &file,
        "[server]\nmax_concurrent_queries = 3\nmax_batch_queries = 5\n",
    )
    .unwrap();
    let c = load(Some(&file), dir.path(), env(&[])).unwrap();
    assert_eq!(
        (c.server.max_concurrent_queries, c.server.max_batch_queries),
        (3, 5)
    );
    let vars = env(&[("QUARRY_SERVER__MAX_CONCURRENT_QUERIES", "7")]);
    let c = load(Some(&file), dir.path(), vars).unwrap();
    assert_eq!(c.server.max_concurrent_queries, 7);
    for (key, bad, range) in [
        ("MAX_CONCURRENT_QUERIES", "0", "between 1 and 4096"),
        ("MAX_CONCURRENT_QUERIES", "4097", "between 1 and 4096"),
        ("MAX_BATCH_QUERIES", "0", "between 1 and"),
    ] {
        let var = format!("QUARRY_SERVER__{key}");
        let err = format!(
            "{:#}",
            load(None, dir.path(), env(&[(&var, bad)])).unwrap_err()
        );
        let name = format!("server.{}", key.to_lowercase());
        assert!(
            err.contains(&name) && err.contains(range),
            "{var}={bad}: {err}"
        );
    }
}
