//! The search playground at `GET /`: the page is served self-contained (CI), and, in a real
//! headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, through
//! fantoccini), a query typed into it shows the hits, and a reader's token never shows a document
//! outside its ACL. The browser tests are `#[ignore]`d in CI and run by
//! `scripts/browser-test.sh`; run that way, a missing browser or driver fails them.

use crate::http::TestServer;
use fantoccini::{Client, ClientBuilder, Locator};
use quarry_core::{DefaultAcl, Principal, Role};
use quarry_index::EngineOptions;
use quarry_server::ServerOptions;
use quarry_server::auth::{ApiKey, Auth};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_KEY: &str = "qk-admin-playground-01";
const READER_KEY: &str = "qk-reader-playground-01";

#[test]
fn the_playground_page_is_served_self_contained() {
    let s = TestServer::start(ServerOptions::default());
    let r = reqwest::blocking::get(format!("{}/", s.url)).unwrap();
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(header("referrer-policy"), "no-referrer");
    let page = r.text().unwrap();
    for id in [
        "token",
        "collection",
        "query",
        "mode",
        "fusion",
        "alpha",
        "filter",
        "top_k",
        "explain",
        "highlight",
        "results",
        "evals",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    // Nothing loaded from elsewhere, and server data never written as markup.
    for outside in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "@import",
        "innerHTML",
    ] {
        assert!(!page.contains(outside), "{outside}");
    }
}

/// A server with an admin and a reader (group `eng`) and the secure default ACL, holding three
/// documents about kettles: one the group may read, one public, one for admins only.
fn server() -> TestServer {
    let keys = vec![
        ApiKey::from_key(ADMIN_KEY, Principal::new("root", vec![], Role::Admin)),
        ApiKey::from_key(
            READER_KEY,
            Principal::new("erin", vec!["eng".into()], Role::Reader),
        ),
    ];
    let s = TestServer::start_with(
        ServerOptions {
            auth: Auth::new(keys, None).unwrap(),
            ..ServerOptions::default()
        },
        EngineOptions {
            default_acl: DefaultAcl::admin_only(),
            ..EngineOptions::default()
        },
    );
    let docs = json!({"documents": [
        {"id": "eng.md", "title": "Kettle maintenance for engineers", "text": "Descale the kettle every month; the heating element lasts longer.", "acl": ["group:eng"]},
        {"id": "public.md", "title": "Kettle buying guide", "text": "A good kettle boils water quickly and switches off by itself.", "acl": ["public"]},
        {"id": "board.md", "title": "Kettle supplier contract terms", "text": "The board approved the kettle supplier at a confidential price."},
    ]});
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/collections/default/documents", s.url))
        .bearer_auth(ADMIN_KEY)
        .json(&docs)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    s
}

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver) is on the PATH");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session (Debian's chromium)")
}

/// Opens the page, enters `token`, waits for the collection list, searches `query` with the
/// server's default fusion; the titles of the hits shown.
async fn search(c: &Client, base: &str, token: &str, query: &str) -> Vec<String> {
    search_with(c, base, token, query, "").await
}

/// [`search`] with `fusion` chosen in the page's menu ("" is the server's default).
async fn search_with(
    c: &Client,
    base: &str,
    token: &str,
    query: &str,
    fusion: &str,
) -> Vec<String> {
    c.goto(&format!("{base}/")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Id("reload"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#collection option[value=default]"))
        .await
        .expect("the collections of the token");
    c.find(Locator::Id("query"))
        .await
        .unwrap()
        .send_keys(query)
        .await
        .unwrap();
    c.find(Locator::Css(&format!("#fusion option[value='{fusion}']")))
        .await
        .expect("the fusion in the menu")
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("result_count"))
        .await
        .expect("an answer on the page");
    let mut titles = Vec::new();
    for h in c.find_all(Locator::Css("article.hit h3")).await.unwrap() {
        titles.push(h.text().await.unwrap());
    }
    titles
}

/// The browser side of a test, on its own runtime (the server side uses blocking clients).
fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

#[test]
#[ignore = "needs chromium and chromedriver: scripts/browser-test.sh"]
fn a_query_typed_into_the_playground_shows_its_hits() {
    let s = server();
    let driver = Driver::start();
    run(async {
        let c = browser(&driver).await;
        let titles = search(&c, &s.url, ADMIN_KEY, "descale the kettle").await;
        assert!(titles.len() == 3, "{titles:?}");
        assert!(
            titles[0].contains("Kettle maintenance for engineers"),
            "{titles:?}"
        );
        // the query's words are marked in the hit, with its source and scores beside it
        let first = c.find(Locator::Css("article.hit")).await.unwrap();
        let marks = first.find_all(Locator::Css("mark")).await.unwrap();
        let mut marked = Vec::new();
        for m in &marks {
            marked.push(m.text().await.unwrap().to_lowercase());
        }
        assert!(marked.contains(&"descale".to_owned()), "{marked:?}");
        let scores = first
            .find(Locator::Css(".scores"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(scores.contains("bm25"), "{scores}");
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("playground.png");
        std::fs::write(&shot, png).unwrap();
        eprintln!("screenshot: {}", shot.display());
        // each fusion of the menu answers, the BM25 and vector match first
        for fusion in ["adaptive", "weighted", "rrf"] {
            let titles = search_with(&c, &s.url, ADMIN_KEY, "descale the kettle", fusion).await;
            assert_eq!(titles.len(), 3, "{fusion}: {titles:?}");
            assert!(titles[0].contains("maintenance"), "{fusion}: {titles:?}");
        }
        c.close().await.unwrap();
    });
}

#[test]
#[ignore = "needs chromium and chromedriver: scripts/browser-test.sh"]
fn a_readers_token_never_shows_documents_outside_its_acl() {
    let s = server();
    let driver = Driver::start();
    run(async {
        let c = browser(&driver).await;
        let titles = search(&c, &s.url, READER_KEY, "kettle supplier contract price").await;
        // the group's and the public document, never the board's (the best match for the query)
        assert_eq!(titles.len(), 2, "{titles:?}");
        assert!(titles.iter().all(|t| !t.contains("supplier")), "{titles:?}");
        let page = c.source().await.unwrap();
        assert!(
            !page.contains("confidential"),
            "the board's text is on the page"
        );
        // no eval runs for a reader (an admin route)
        let evals = c.find(Locator::Id("evals")).await.unwrap();
        assert_eq!(evals.attr("hidden").await.unwrap().as_deref(), Some("true"));
        c.close().await.unwrap();
    });
}
