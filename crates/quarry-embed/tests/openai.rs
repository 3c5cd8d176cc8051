//! The OpenAI-compatible embedder against a scripted HTTP server on a real socket.
//!
//! The server is plain `std::net` (one thread per connection, `Connection: close`), so each test
//! decides exactly what every request gets: a correct answer (vectors derived from a hash of each
//! input text, so order can be checked), an error status, a slow answer, a dropped connection, or
//! one of several kinds of garbage.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_core::embed::normalize;
use quarry_core::{EmbedError, Embedder, InputKind};
use quarry_embed::{OpenAiEmbedder, OpenAiOptions};
use serde_json::{Value, json};

/// What the server does with one request.
#[derive(Clone, Debug)]
enum Act {
    /// The right vectors, items in index order.
    Ok,
    /// The right vectors, items reversed.
    Shuffled,
    /// This status, extra headers and body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Sleep, then answer `Ok` (the client may be gone by then).
    Slow(Duration),
    /// Read the request, then close the connection without a word.
    Drop,
    WrongCount,
    WrongDim,
    Garbage,
    DupIndex,
    OutOfRangeIndex,
    Infinite,
}

struct Request {
    path: String,
    auth: Option<String>,
    body: Value,
    at: Instant,
}

struct Server {
    addr: SocketAddr,
    default_dims: usize,
    script: Mutex<VecDeque<Act>>,
    fallback: Mutex<Act>,
    requests: Mutex<Vec<Request>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Server {
    /// Starts a server answering `Ok` unless scripted; `default_dims` when the request names none.
    fn start(default_dims: usize) -> Arc<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Arc::new(Server {
            addr: listener.local_addr().unwrap(),
            default_dims,
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(Act::Ok),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || s.handle(stream));
            }
        });
        server
    }

    /// The next requests get these, in order; then the fallback.
    fn script(&self, acts: impl IntoIterator<Item = Act>) {
        self.script.lock().unwrap().extend(acts);
    }

    fn always(&self, act: Act) {
        *self.fallback.lock().unwrap() = act;
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1/", self.addr)
    }

    fn handle(&self, stream: TcpStream) {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut len = 0usize;
        let mut auth = None;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => len = value.trim().parse().unwrap_or(0),
                    "authorization" => auth = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.requests.lock().unwrap().push(Request {
            path,
            auth,
            body: body.clone(),
            at: Instant::now(),
        });
        let act = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.fallback.lock().unwrap().clone());
        self.respond(&stream, &act, &body);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn respond(&self, mut stream: &TcpStream, act: &Act, req: &Value) {
        let inputs: Vec<String> = req["input"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let dims = req["dimensions"]
            .as_u64()
            .map_or(self.default_dims, |d| d as usize);
        let items = |dims: usize| -> Vec<Value> {
            inputs
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": raw_vector(t, dims)}))
                .collect()
        };
        let (status, headers, body): (u16, Vec<(&str, String)>, String) = match act {
            Act::Ok => (200, vec![], answer(items(dims))),
            Act::Shuffled => {
                let mut data = items(dims);
                data.reverse();
                (200, vec![], answer(data))
            }
            Act::Status(code, headers, body) => (*code, headers.clone(), body.clone()),
            Act::Slow(d) => {
                std::thread::sleep(*d);
                (200, vec![], answer(items(dims)))
            }
            Act::Drop => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Act::WrongCount => {
                let mut data = items(dims);
                data.pop();
                (200, vec![], answer(data))
            }
            Act::WrongDim => (200, vec![], answer(items(dims + 1))),
            Act::Garbage => (200, vec![], "<html>502 Bad Gateway</html>".into()),
            Act::DupIndex => {
                let mut data = items(dims);
                if let Some(last) = data.last_mut() {
                    last["index"] = json!(0);
                }
                (200, vec![], answer(data))
            }
            Act::OutOfRangeIndex => {
                let mut data = items(dims);
                let n = data.len();
                if let Some(last) = data.last_mut() {
                    last["index"] = json!(n);
                }
                (200, vec![], answer(data))
            }
            Act::Infinite => {
                let mut data = items(dims);
                data[0]["embedding"][0] = json!(1e300);
                (200, vec![], answer(data))
            }
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            reason(status),
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

fn answer(data: Vec<Value>) -> String {
    json!({"object": "list", "data": data, "model": "test-model", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        .to_string()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// The server's vector for `text`: deterministic, different per text, not normalised.
fn raw_vector(text: &str, dims: usize) -> Vec<f32> {
    (0..dims)
        .map(|j| {
            let h = blake3::hash(format!("{j}:{text}").as_bytes());
            let b = h.as_bytes();
            f32::from(u16::from_le_bytes([b[0], b[1]])) / 65535.0 - 0.5
        })
        .collect()
}

/// What the embedder must return for `text`.
fn expected(text: &str, dims: usize) -> Vec<f32> {
    let mut v = raw_vector(text, dims);
    normalize(&mut v);
    v
}

fn assert_vectors(got: &[Vec<f32>], texts: &[&str], dims: usize) {
    assert_eq!(got.len(), texts.len());
    for (i, (v, t)) in got.iter().zip(texts).enumerate() {
        let want = expected(t, dims);
        assert_eq!(v.len(), dims, "vector {i}");
        assert!(
            v.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
            "vector {i} is not the vector of {t:?}"
        );
    }
}

/// Test options: 8 dimensions, short timeouts and backoffs.
fn opts(server: &Server) -> OpenAiOptions {
    OpenAiOptions {
        dimensions: Some(8),
        timeout: Duration::from_secs(5),
        max_retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..OpenAiOptions::new(server.base_url(), "test-model")
    }
}

fn provider_err(r: Result<Vec<Vec<f32>>, EmbedError>) -> String {
    match r {
        Err(EmbedError::Provider(msg)) => msg,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[test]
fn many_inputs_across_batches_keep_their_order() {
    let server = Server::start(8);
    let e = OpenAiEmbedder::new(OpenAiOptions {
        api_key: Some("sk-test".into()),
        dimensions: Some(12),
        batch_size: 16,
        max_concurrency: 3,
        ..opts(&server)
    })
    .unwrap();
    server.always(Act::Shuffled);
    assert_eq!(server.count(), 0, "no probe when dimensions are configured");

    let owned: Vec<String> = (0..150).map(|i| format!("passage number {i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let got = e.embed(&texts, InputKind::Document).unwrap();
    assert_vectors(&got, &texts, 12);
    for v in &got {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 10, "150 texts in batches of 16");
    let mut seen = Vec::new();
    for r in requests.iter() {
        assert_eq!(r.path, "/v1/embeddings");
        assert_eq!(r.auth.as_deref(), Some("Bearer sk-test"));
        assert_eq!(r.body["model"], "test-model");
        assert_eq!(r.body["dimensions"], 12);
        let input = r.body["input"].as_array().unwrap();
        assert!(!input.is_empty() && input.len() <= 16);
        seen.extend(input.iter().map(|t| t.as_str().unwrap().to_owned()));
    }
    seen.sort();
    let mut all = owned.clone();
    all.sort();
    assert_eq!(seen, all, "every text sent exactly once");

    let spec = e.spec();
    assert_eq!(
        (
            spec.provider.as_str(),
            spec.model.as_str(),
            spec.revision.as_str()
        ),
        ("openai", "test-model", "test-model")
    );
    assert_eq!(spec.dimensions, 12);
    assert_eq!(
        (spec.pooling.as_str(), spec.normalized, spec.max_tokens),
        ("none", true, 0)
    );
    assert_eq!(e.fingerprint(), spec.fingerprint());
    assert_eq!(e.count_tokens("anything"), None);
    // the key never shows in Debug output
    assert!(!format!("{e:?}").contains("sk-test"));
}

#[test]
fn dimension_is_probed_when_not_configured() {
    let server = Server::start(7);
    let e = OpenAiEmbedder::new(OpenAiOptions {
        dimensions: None,
        ..opts(&server)
    })
    .unwrap();
    assert_eq!(e.spec().dimensions, 7);
    assert_eq!(server.count(), 1, "one probe");
    let got = e.embed(&["a", "b", "c"], InputKind::Query).unwrap();
    assert_vectors(&got, &["a", "b", "c"], 7);
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    for r in requests.iter() {
        assert_eq!(r.auth, None, "no key, no Authorization header");
        assert!(r.body.get("dimensions").is_none(), "dimensions not sent");
    }

    // a probe that fails makes `new` fail
    let server = Server::start(7);
    server.always(Act::Status(401, vec![], "{}".into()));
    let err = OpenAiEmbedder::new(OpenAiOptions {
        dimensions: None,
        ..opts(&server)
    })
    .unwrap_err();
    assert!(matches!(err, EmbedError::Model(_)), "{err:?}");
}

#[test]
fn shuffled_indexes_are_put_back_in_order() {
    let server = Server::start(8);
    server.always(Act::Shuffled);
    let e = OpenAiEmbedder::new(opts(&server)).unwrap();
    let texts = ["one", "two", "three", "four", "five"];
    assert_vectors(&e.embed(&texts, InputKind::Document).unwrap(), &texts, 8);
    assert_eq!(server.count(), 1);
}

#[test]
fn retry_after_on_429_is_honoured() {
    let server = Server::start(8);
    server.script([Act::Status(
        429,
        vec![("Retry-After", "1".into())],
        r#"{"error":{"message":"Rate limit reached"}}"#.into(),
    )]);
    let e = OpenAiEmbedder::new(OpenAiOptions {
        backoff_max: Duration::from_secs(3),
        ..opts(&server)
    })
    .unwrap();
    let start = Instant::now();
    let got = e.embed(&["x", "y"], InputKind::Document).unwrap();
    assert_vectors(&got, &["x", "y"], 8);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(1));
}

#[test]
fn retry_after_is_capped_by_backoff_max() {
    let server = Server::start(8);
    server.script([Act::Status(
        503,
        vec![("Retry-After", "30".into())],
        String::new(),
    )]);
    let e = OpenAiEmbedder::new(OpenAiOptions {
        backoff_max: Duration::from_millis(200),
        ..opts(&server)
    })
    .unwrap();
    let start = Instant::now();
    e.embed(&["x"], InputKind::Document).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.count(), 2);
}

#[test]
fn server_errors_and_dropped_connections_are_retried() {
    let server = Server::start(8);
    server.script([
        Act::Status(500, vec![], "oops".into()),
        Act::Status(503, vec![], String::new()),
        Act::Drop,
        Act::Status(502, vec![], String::new()),
    ]);
    let e = OpenAiEmbedder::new(OpenAiOptions {
        max_retries: 5,
        ..opts(&server)
    })
    .unwrap();
    let got = e.embed(&["alpha", "beta"], InputKind::Document).unwrap();
    assert_vectors(&got, &["alpha", "beta"], 8);
    assert_eq!(server.count(), 5);
}

#[test]
fn retries_are_bounded() {
    let server = Server::start(8);
    server.always(Act::Status(
        500,
        vec![],
        r#"{"error":{"message":"boom"}}"#.into(),
    ));
    let e = OpenAiEmbedder::new(OpenAiOptions {
        max_retries: 2,
        ..opts(&server)
    })
    .unwrap();
    let msg = provider_err(e.embed(&["x"], InputKind::Document));
    assert!(msg.contains("500") && msg.contains("boom"), "{msg}");
    assert!(msg.contains("3 attempts"), "{msg}");
    assert_eq!(server.count(), 3);
}

#[test]
fn client_errors_fail_at_once_with_the_providers_message() {
    for code in [400u16, 401, 403, 404, 422] {
        let server = Server::start(8);
        let body = format!(
            r#"{{"error":{{"message":"provider says {code}","type":"invalid_request_error"}}}}"#
        );
        server.always(Act::Status(code, vec![], body));
        let e = OpenAiEmbedder::new(OpenAiOptions {
            api_key: Some("sk-secret".into()),
            ..opts(&server)
        })
        .unwrap();
        let err = e.embed(&["x"], InputKind::Document).unwrap_err();
        let msg = match (&err, code) {
            (EmbedError::Model(m), 401 | 403 | 404) => m,
            (EmbedError::Provider(m), 400 | 422) => m,
            _ => panic!("{code}: unexpected error kind {err:?}"),
        };
        assert!(msg.contains(&format!("provider says {code}")), "{msg}");
        assert!(!msg.contains("sk-secret"), "{msg}");
        assert_eq!(server.count(), 1, "{code} is not retried");
    }
}

#[test]
fn unusable_answers_fail_after_one_retry() {
    for act in [
        Act::WrongCount,
        Act::WrongDim,
        Act::Garbage,
        Act::DupIndex,
        Act::OutOfRangeIndex,
        Act::Infinite,
    ] {
        let server = Server::start(8);
        server.always(act.clone());
        let e = OpenAiEmbedder::new(opts(&server)).unwrap();
        let msg = provider_err(e.embed(&["a", "b", "c"], InputKind::Document));
        assert!(msg.contains("2 attempts"), "{act:?}: {msg}");
        assert_eq!(server.count(), 2, "{act:?}");
    }

    // one bad answer, then a good one: fine
    let server = Server::start(8);
    server.script([Act::Garbage]);
    let e = OpenAiEmbedder::new(opts(&server)).unwrap();
    assert_vectors(
        &e.embed(&["a", "b"], InputKind::Document).unwrap(),
        &["a", "b"],
        8,
    );
    assert_eq!(server.count(), 2);
}

#[test]
fn a_slow_provider_times_out_within_a_bound() {
    let server = Server::start(8);
    server.always(Act::Slow(Duration::from_secs(3)));
    let e = OpenAiEmbedder::new(OpenAiOptions {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        ..opts(&server)
    })
    .unwrap();
    let start = Instant::now();
    let msg = provider_err(e.embed(&["x"], InputKind::Document));
    let took = start.elapsed();
    assert!(msg.contains("timed out"), "{msg}");
    assert_eq!(server.count(), 2);
    // 2 attempts × 300 ms + ≤ 20 ms backoff, plus slack for a loaded machine
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1600),
        "{took:?}"
    );
}

#[test]
fn concurrency_is_bounded() {
    let server = Server::start(8);
    server.always(Act::Slow(Duration::from_millis(150)));
    let e = OpenAiEmbedder::new(OpenAiOptions {
        batch_size: 2,
        max_concurrency: 3,
        ..opts(&server)
    })
    .unwrap();
    let owned: Vec<String> = (0..30).map(|i| format!("t{i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let got = e.embed(&texts, InputKind::Document).unwrap();
    assert_vectors(&got, &texts, 8);
    assert_eq!(server.count(), 15);
    let max = server.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max in flight {max}");
}

#[test]
fn a_failed_batch_stops_the_others() {
    let server = Server::start(8);
    server.always(Act::Status(500, vec![], String::new()));
    let e = OpenAiEmbedder::new(OpenAiOptions {
        batch_size: 1,
        max_concurrency: 2,
        max_retries: 1,
        ..opts(&server)
    })
    .unwrap();
    let owned: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    provider_err(e.embed(&texts, InputKind::Document));
    assert!(server.count() <= 4, "{} requests", server.count());
}

#[test]
fn empty_input_and_bad_options() {
    let server = Server::start(8);
    let e = OpenAiEmbedder::new(opts(&server)).unwrap();
    assert_eq!(
        e.embed(&[], InputKind::Query).unwrap(),
        Vec::<Vec<f32>>::new()
    );
    assert!(matches!(
        e.embed(&["a", ""], InputKind::Document),
        Err(EmbedError::Input(_))
    ));
    assert_eq!(server.count(), 0);

    let base = opts(&server);
    let bad = [
        OpenAiOptions {
            batch_size: 0,
            ..base.clone()
        },
        OpenAiOptions {
            max_concurrency: 0,
            ..base.clone()
        },
        OpenAiOptions {
            dimensions: Some(0),
            ..base.clone()
        },
        OpenAiOptions {
            timeout: Duration::ZERO,
            ..base.clone()
        },
        OpenAiOptions {
            model: " ".into(),
            ..base.clone()
        },
        OpenAiOptions {
            base_url: "not a url".into(),
            ..base.clone()
        },
        OpenAiOptions {
            base_url: "ftp://example.com/v1".into(),
            ..base.clone()
        },
        OpenAiOptions {
            api_key: Some(String::new()),
            ..base.clone()
        },
    ];
    for o in bad {
        let shown = format!("{o:?}");
        assert!(
            matches!(OpenAiEmbedder::new(o), Err(EmbedError::Model(_))),
            "{shown}"
        );
    }

    // nothing listening: connection errors are retried, then a provider error
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let e = OpenAiEmbedder::new(OpenAiOptions {
        base_url: url,
        max_retries: 1,
        ..base
    })
    .unwrap();
    let msg = provider_err(e.embed(&["x"], InputKind::Document));
    assert!(msg.contains("2 attempts"), "{msg}");
}
