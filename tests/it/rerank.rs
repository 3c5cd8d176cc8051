//! Reranking against a scripted `/rerank` service on a real socket, through the HTTP API (the
//! in-process server) and `quarry eval`: the reranked order when the service answers, and the
//! fused order with `degraded: true` and a warning when it is slow, rate-limited, failing or
//! answers garbage, with the number of requests each case takes.
//!
//! The double is plain `std::net` (one thread per connection, `Connection: close`). A correct
//! answer scores passage `i` of a request `i`: the reranked order is the fused order reversed.

use crate::http::TestServer;
use crate::{path_str, read_request, run, run_json, tmp, write_tree};
use quarry_embed::{HttpReranker, RerankFormat, RerankOptions};
use quarry_index::EngineOptions;
use quarry_server::ServerOptions;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the double does with one request.
#[derive(Clone, Debug)]
enum Act {
    /// Every passage scored by its position, best first, in the request's format.
    Ok,
    /// This status, extra headers and body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Sleep, then answer `Ok` (the client is gone by then).
    Slow(Duration),
    Garbage,
    /// An index one past the last passage.
    OutOfRange,
    /// A score for every passage but the last.
    Fewer,
}

struct Double {
    addr: SocketAddr,
    script: Mutex<VecDeque<Act>>,
    fallback: Mutex<Act>,
    requests: Mutex<Vec<Value>>,
}

impl Double {
    fn start() -> Arc<Double> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let double = Arc::new(Double {
            addr: listener.local_addr().unwrap(),
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(Act::Ok),
            requests: Mutex::new(Vec::new()),
        });
        let d = double.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let d = d.clone();
                std::thread::spawn(move || d.handle(stream));
            }
        });
        double
    }

    fn url(&self) -> String {
        format!("http://{}/rerank", self.addr)
    }

    /// The next requests get these, then `always`'s act.
    fn script(&self, acts: impl IntoIterator<Item = Act>) {
        let mut s = self.script.lock().unwrap();
        s.clear();
        s.extend(acts);
    }

    fn always(&self, act: Act) {
        *self.fallback.lock().unwrap() = act;
    }

    /// Requests received since the last call.
    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }

    fn handle(&self, stream: TcpStream) {
        let Some((_, body)) = read_request(&mut BufReader::new(&stream)) else {
            return;
        };
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.requests.lock().unwrap().push(req.clone());
        let act = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.fallback.lock().unwrap().clone());
        let tei = req.get("texts").is_some();
        let n = req[if tei { "texts" } else { "documents" }]
            .as_array()
            .map_or(0, Vec::len);
        // best first, as services answer
        let items = |indices: Vec<usize>| -> String {
            let items: Vec<Value> = indices
                .into_iter()
                .rev()
                .map(|i| {
                    if tei {
                        json!({"index": i, "score": i as f32})
                    } else {
                        json!({"index": i, "relevance_score": i as f32})
                    }
                })
                .collect();
            if tei {
                Value::Array(items).to_string()
            } else {
                json!({"id": "x", "results": items, "meta": {}}).to_string()
            }
        };
        let (status, headers, body) = match act {
            Act::Ok => (200, vec![], items((0..n).collect())),
            Act::Status(code, headers, body) => (code, headers, body),
            Act::Slow(d) => {
                std::thread::sleep(d);
                (200, vec![], items((0..n).collect()))
            }
            Act::Garbage => (200, vec![], "<html>502 Bad Gateway</html>".into()),
            Act::OutOfRange => (200, vec![], items((1..=n).collect())),
            Act::Fewer => (200, vec![], items((0..n.saturating_sub(1)).collect())),
        };
        let mut stream = &stream;
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
        let _ = stream.flush();
        let _ = stream.shutdown(Shutdown::Write);
    }
}

/// A server whose reranker is `double` in `format`: 1.5 s per query, 2 retries, short backoffs.
fn server(double: &Double, format: RerankFormat) -> TestServer {
    let reranker = HttpReranker::new(RerankOptions {
        model: Some("test-reranker".into()),
        format,
        timeout: Duration::from_millis(1500),
        max_retries: 2,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(1000),
        max_top_n: 20,
        ..RerankOptions::new(double.url())
    })
    .unwrap();
    let s = TestServer::start_with(
        ServerOptions::default(),
        EngineOptions {
            reranker: Some(Arc::new(reranker)),
            ..EngineOptions::default()
        },
    );
    seed(&s);
    s
}

/// Ten documents that BM25 ranks doc-9, doc-8, …, doc-0 for "apple" (more of it, higher).
fn seed(s: &TestServer) {
    let docs: Vec<Value> = (0..10)
        .map(|i| {
            let text = format!("{} pear{i}", "apple ".repeat(i + 1));
            json!({"id": format!("doc-{i}"), "title": "fruit", "text": text})
        })
        .collect();
    let (status, body) = s.post(
        "/v1/collections/default/documents",
        &json!({"documents": docs}),
    );
    assert_eq!(status, 200, "{body}");
}

fn query(s: &TestServer, body: Value) -> Value {
    let (status, answer) = s.post("/v1/collections/default/query", &body);
    assert_eq!(status, 200, "{answer}");
    answer
}

fn ids(answer: &Value) -> Vec<String> {
    crate::doc_ids(answer)
}

/// `doc-9` … in the order of `numbers`.
fn named(numbers: &[usize]) -> Vec<String> {
    numbers.iter().map(|i| format!("doc-{i}")).collect()
}

#[test]
fn a_reranker_reorders_and_a_misbehaving_one_leaves_the_fused_order() {
    let double = Double::start();
    let s = server(&double, RerankFormat::Cohere);
    let fused = query(&s, json!({"query": "apple", "mode": "bm25", "top_k": 5}));
    assert_eq!(ids(&fused), named(&[9, 8, 7, 6, 5]));
    let ask = json!({"query": "apple", "mode": "bm25", "top_k": 5, "rerank": {"top_n": 5}});

    // answered: reversed; the score is the reranker's, the fused one kept beside it
    let a = query(&s, ask.clone());
    assert_eq!(ids(&a), named(&[5, 6, 7, 8, 9]));
    assert_eq!(a["degraded"], false);
    let top = &a["results"][0];
    assert_eq!(top["score"], 4.0);
    assert_eq!(top["scores"]["rerank"], 4.0);
    assert_eq!(top["scores"]["fused"], fused["results"][4]["score"]);
    let sent = double.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["model"], "test-reranker");
    assert_eq!(sent[0]["query"], "apple");
    assert_eq!(sent[0]["top_n"], 5);
    assert_eq!(
        sent[0]["documents"][0],
        format!("fruit\n{} pear9", "apple ".repeat(10))
    );

    // 429 with Retry-After: 1, then an answer: reranked, after the wait
    double.script([Act::Status(
        429,
        vec![("Retry-After", "1".into())],
        r#"{"message": "slow down"}"#.into(),
    )]);
    let started = Instant::now();
    let a = query(&s, ask.clone());
    assert_eq!(ids(&a), named(&[5, 6, 7, 8, 9]));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(double.take().len(), 2);

    // garbage once, then an answer: reranked
    double.script([Act::Garbage]);
    let a = query(&s, ask.clone());
    assert_eq!(ids(&a), named(&[5, 6, 7, 8, 9]));
    assert_eq!(double.take().len(), 2);

    // what fails for good: fused order, degraded, a warning saying why, so many requests
    let cases = [
        (Act::Status(500, vec![], "boom".into()), 3, "500"),
        (Act::Status(503, vec![], String::new()), 3, "3 attempts"),
        (Act::Slow(Duration::from_secs(4)), 1, "timed out"),
        (Act::Garbage, 2, "not Cohere-format"),
        (Act::OutOfRange, 2, "out of range"),
        (Act::Fewer, 2, "scores 4 passages of the 5"),
        (Act::Status(401, vec![], "bad key".into()), 1, "API key"),
    ];
    for (act, requests, why) in cases {
        double.script([]);
        double.always(act.clone());
        let started = Instant::now();
        let a = query(&s, ask.clone());
        let took = started.elapsed();
        assert_eq!(ids(&a), ids(&fused), "{act:?}");
        assert_eq!(a["degraded"], true, "{act:?}");
        assert!(a["results"][0]["scores"]["rerank"].is_null(), "{act:?}");
        assert_eq!(a["results"][0]["score"], fused["results"][0]["score"]);
        let warning = a["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains("fused order") && warning.contains(why),
            "{act:?}: {warning}"
        );
        assert_eq!(double.take().len(), requests, "{act:?}");
        // the reranker's own bound (1.5 s), with slack for a loaded machine
        assert!(took < Duration::from_millis(3000), "{act:?}: {took:?}");
    }
}

#[test]
fn reranking_comes_before_paging_and_tei_is_spoken_too() {
    let double = Double::start();
    let s = server(&double, RerankFormat::Tei);
    // the first 6 of 9 … 0 reversed (4 … 9), then the fused tail (3, 2, …)
    let a = query(
        &s,
        json!({"query": "apple", "mode": "bm25", "top_k": 8, "rerank": {"top_n": 6}}),
    );
    assert_eq!(ids(&a), named(&[4, 5, 6, 7, 8, 9, 3, 2]));
    assert_eq!(a["results"][5]["scores"]["rerank"], 0.0);
    assert!(a["results"][6]["scores"]["rerank"].is_null());
    let sent = double.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["texts"].as_array().unwrap().len(), 6);
    assert_eq!(sent[0]["truncate"], true);
    assert!(sent[0].get("model").is_none(), "TEI takes no model");

    // a page of the reranked order
    let a = query(
        &s,
        json!({"query": "apple", "mode": "bm25", "top_k": 2, "offset": 2, "rerank": {"top_n": 6}}),
    );
    assert_eq!(ids(&a), named(&[6, 7]));
    assert_eq!(double.take()[0]["texts"].as_array().unwrap().len(), 6);

    // top_n above the reranker's max_top_n, or out of range: 400 naming the option
    for top_n in [21, 0] {
        let (status, body) = s.post(
            "/v1/collections/default/query",
            &json!({"query": "apple", "rerank": {"top_n": top_n}}),
        );
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rerank.top_n"),
            "{body}"
        );
    }
    assert!(double.take().is_empty());
}

#[test]
fn without_a_reranker_a_rerank_query_is_refused() {
    let s = TestServer::start(ServerOptions::default());
    seed(&s);
    let (status, body) = s.post(
        "/v1/collections/default/query",
        &json!({"query": "apple", "rerank": {"top_n": 5}}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`rerank`") && msg.contains("[reranker]"),
        "{msg}"
    );

    let data = tmp();
    let out = run(data.path(), &["query", "apple", "--rerank-top-n", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[reranker]"));
}

/// `quarry eval --rerank-top-n`: a reranker that reverses BM25's order moves the one relevant
/// document from rank 3 to rank 1, so nDCG@10 goes from 1/log2(4) = 0.5 to 1, and `eval compare`
/// says so.
#[test]
fn eval_measures_a_reranked_collection() {
    let double = Double::start();
    let ds = tmp();
    let corpus = [
        ("a", "apple apple apple"),
        ("b", "apple apple"),
        ("c", "apple"),
    ]
    .iter()
    .map(|(id, text)| format!("{{\"_id\": \"{id}\", \"title\": \"\", \"text\": \"{text}\"}}\n"))
    .collect::<String>();
    write_tree(
        ds.path(),
        &[
            ("corpus.jsonl", corpus.as_bytes()),
            ("queries.jsonl", b"{\"_id\": \"q1\", \"text\": \"apple\"}\n"),
            ("qrels/test.tsv", b"query-id\tcorpus-id\tscore\nq1\tc\t1\n"),
        ],
    );
    let data = tmp();
    let config = format!(
        "[reranker]\nurl = \"{}\"\nmodel = \"test-reranker\"\ntimeout_ms = 5000\n",
        double.url()
    );
    write_tree(data.path(), &[("quarry.toml", config.as_bytes())]);
    let dsp = path_str(ds.path());
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--dataset", &dsp, "--modes", "bm25", "--json"];
        args.extend_from_slice(extra);
        run_json(data.path(), &args)
    };
    let plain = eval(&[]);
    assert!(double.take().is_empty());
    let reranked = eval(&["--rerank-top-n", "3"]);
    assert_eq!(double.take().len(), 1);
    assert_eq!(reranked["rerank_top_n"], 3);
    let ndcg = |r: &Value| r["modes"]["bm25"]["ndcg@10"].as_f64().unwrap();
    assert!((ndcg(&plain) - 0.5).abs() < 1e-9, "{plain}");
    assert!((ndcg(&reranked) - 1.0).abs() < 1e-9, "{reranked}");
    assert_eq!(reranked["modes"]["bm25"]["degraded"], 0);

    let cmp = run_json(data.path(), &["eval", "compare", "r1", "r2", "--json"]);
    let better = cmp["modes"]["bm25"]["better"].as_array().unwrap();
    assert_eq!(better.len(), 1, "{cmp}");
    assert_eq!(better[0]["query"], "q1");
    assert!((better[0]["delta"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    let history = run_json(data.path(), &["eval", "history", "--json"]);
    assert_eq!(history["runs"][1]["config"]["rerank_top_n"], 3);

    // a reranker that fails: counted as degraded, the fused order measured
    double.always(Act::Status(500, vec![], String::new()));
    let failed = eval(&["--rerank-top-n", "3"]);
    assert_eq!(failed["modes"]["bm25"]["degraded"], 1);
    assert!((ndcg(&failed) - 0.5).abs() < 1e-9, "{failed}");
}
