//! `quarry eval report --out FILE.html`: one self-contained HTML file (inline CSS and SVG, no
//! script, no external asset) with metric trends over the recorded runs, the per-query nDCG@10
//! deltas of the latest comparison (the last two runs of a collection), and tables.

use super::format::{fusion_text, time};
use super::{Comparison, EvalRun, EvalRunSummary, compare};
use crate::{Engine, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Metrics charted over runs.
const TRENDS: [&str; 3] = ["ndcg@10", "recall@100", "mrr@10"];
/// Colours of the modes' lines, in mode order.
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn metric(run: &EvalRunSummary, mode: &str, name: &str) -> Option<f64> {
    run.metric(mode, name)
}

fn modes_of(runs: &[EvalRunSummary]) -> Vec<String> {
    let set: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| r.metrics.keys().cloned())
        .collect();
    set.into_iter().collect()
}

/// A line chart of `name` over `runs` (x: run order), one line per mode.
fn trend_svg(runs: &[EvalRunSummary], modes: &[String], name: &str) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 240.0, 48.0, 16.0, 24.0, 40.0);
    let values: Vec<f64> = runs
        .iter()
        .flat_map(|r| modes.iter().filter_map(|m| metric(r, m, name)))
        .collect();
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    if values.is_empty() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 0.02 {
        lo -= 0.01;
        hi += 0.01;
    }
    let x = |i: usize| {
        if runs.len() <= 1 {
            left + (w - left - right) / 2.0
        } else {
            left + (w - left - right) * i as f64 / (runs.len() - 1) as f64
        }
    };
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{n} over runs">"##,
        n = esc(name)
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/><text x="{left}" y="16" font-size="13" font-weight="bold">{}</text>"##,
        esc(name)
    );
    for t in 0..=4 {
        let v = lo + (hi - lo) * t as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/><text x="4" y="{:.1}" font-size="10">{v:.3}</text>"##,
            w - right,
            yy + 3.0
        );
    }
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
            x(i),
            h - bottom + 16.0,
            esc(&r.id)
        );
    }
    for (mi, mode) in modes.iter().enumerate() {
        let colour = COLOURS[mi % COLOURS.len()];
        let points: Vec<(f64, f64)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| metric(r, mode, name).map(|v| (x(i), y(v))))
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
            path.join(" ")
        );
        for (a, b) in &points {
            let _ = write!(
                s,
                r##"<circle cx="{a:.1}" cy="{b:.1}" r="3" fill="{colour}"/>"##
            );
        }
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
            left + 90.0 * mi as f64,
            h - 14.0,
            left + 90.0 * mi as f64 + 14.0,
            h - 5.0,
            esc(mode)
        );
    }
    s.push_str("</svg>");
    s
}

/// Bars of the per-query nDCG@10 change, B − A, worst first.
fn delta_svg(c: &Comparison, mode: &str) -> String {
    let Some(m) = c.modes.get(mode) else {
        return String::new();
    };
    let mut deltas: Vec<(&str, f64)> = m
        .worse
        .iter()
        .chain(&m.better)
        .map(|q| (q.query.as_str(), q.delta))
        .collect();
    deltas.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (w, h, pad) = (640.0, 220.0, 24.0);
    let mid = h / 2.0;
    let n = deltas.len().max(1) as f64;
    let bw = ((w - 2.0 * pad) / n).max(1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="per-query nDCG@10 change"><rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/><line x1="{pad}" y1="{mid}" x2="{:.1}" y2="{mid}" stroke="#888888"/>"##,
        w - pad
    );
    for (i, (q, d)) in deltas.iter().enumerate() {
        let len = d.abs() * (mid - pad);
        let (yy, colour) = if *d < 0.0 {
            (mid, "#d62728")
        } else {
            (mid - len, "#2ca02c")
        };
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{yy:.1}" width="{:.1}" height="{len:.1}" fill="{colour}"><title>query {}: {d:+.4}</title></rect>"##,
            pad + bw * i as f64,
            (bw - 1.0).max(1.0),
            esc(q)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{pad}" y="16" font-size="12">{} queries changed: {} worse (red), {} better (green); p = {:.4}</text></svg>"##,
        deltas.len(),
        m.worse.len(),
        m.better.len(),
        m.p_value
    );
    s
}

/// The report of `runs` (oldest first); `latest` is the pair compared (the last two runs of the
/// newest run's collection), if there are two.
pub fn render(
    runs: &[EvalRunSummary],
    latest: Option<(&EvalRun, &EvalRun)>,
    mode: Option<&str>,
) -> Result<String> {
    let modes = modes_of(runs);
    let mut o = String::new();
    o.push_str(r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>quarry eval report</title><style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:12px;background:#fff}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#eee}
.num{text-align:right;font-variant-numeric:tabular-nums}.worse{color:#b00}.better{color:#070}
svg{display:block;margin:8px 0;border:1px solid #ddd}
</style></head><body>"#);
    let _ = write!(
        o,
        "<h1>quarry retrieval quality</h1><p>{} recorded runs{}.</p>",
        runs.len(),
        runs.last()
            .map(|r| format!(", the latest {} at {} UTC", esc(&r.id), time(r.created_at)))
            .unwrap_or_default()
    );
    o.push_str("<h2>Trends</h2>");
    for name in TRENDS {
        o.push_str(&trend_svg(runs, &modes, name));
    }
    if let Some((a, b)) = latest {
        let c = compare(a, b, mode)?;
        let _ = write!(
            o,
            "<h2>Latest comparison: {} → {}</h2><p>A = {} ({}), B = {} ({}).</p>",
            esc(&c.a.id),
            esc(&c.b.id),
            esc(&c.a.id),
            esc(&fusion_text(&c.a.config["fusion"])),
            esc(&c.b.id),
            esc(&fusion_text(&c.b.config["fusion"])),
        );
        for (mode, m) in &c.modes {
            let _ = write!(o, "<h3>{}</h3>", esc(mode));
            o.push_str(&delta_svg(&c, mode));
            o.push_str("<table><tr><th>metric</th><th>A</th><th>B</th><th>B − A</th></tr>");
            for (name, [a, b, d]) in &m.metrics {
                let _ = write!(
                    o,
                    r#"<tr><td>{}</td><td class="num">{a:.4}</td><td class="num">{b:.4}</td><td class="num">{d:+.4}</td></tr>"#,
                    esc(name)
                );
            }
            let _ = write!(
                o,
                "</table><p>Paired randomization test of nDCG@10: p = {:.4}, over {} queries.</p>",
                m.p_value, m.queries
            );
            o.push_str("<table><tr><th>query</th><th>nDCG@10 A</th><th>B</th><th>change</th><th>top 3 in A</th><th>top 3 in B</th></tr>");
            for (q, class) in m
                .worse
                .iter()
                .take(10)
                .map(|q| (q, "worse"))
                .chain(m.better.iter().take(10).map(|q| (q, "better")))
            {
                let top =
                    |l: &[String]| esc(&l.iter().take(3).cloned().collect::<Vec<_>>().join(", "));
                let _ = write!(
                    o,
                    r#"<tr class="{class}"><td>{}</td><td class="num">{:.4}</td><td class="num">{:.4}</td><td class="num">{:+.4}</td><td>{}</td><td>{}</td></tr>"#,
                    esc(&q.query),
                    q.a,
                    q.b,
                    q.delta,
                    top(&q.ranked_a),
                    top(&q.ranked_b)
                );
            }
            o.push_str("</table>");
        }
    }
    o.push_str("<h2>Runs</h2><table><tr><th>run</th><th>time (UTC)</th><th>collection</th><th>source</th><th>fusion</th><th>embedding version</th>");
    for m in &modes {
        let _ = write!(
            o,
            "<th>{} nDCG@10</th><th>{} Recall@100</th>",
            esc(m),
            esc(m)
        );
    }
    o.push_str("</tr>");
    for r in runs {
        let source = r.config["golden"]
            .as_str()
            .map(|g| format!("golden {g}"))
            .or_else(|| {
                r.config["dataset"]
                    .as_str()
                    .map(|d| format!("{d}:{}", r.config["split"].as_str().unwrap_or("-")))
            })
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&r.id),
            time(r.created_at),
            esc(&r.collection),
            esc(&source),
            esc(&fusion_text(&r.config["fusion"])),
            esc(r.config["embedding_version"].as_str().unwrap_or("-"))
        );
        for m in &modes {
            let cell = |name| metric(r, m, name).map_or("-".into(), |v| format!("{v:.4}"));
            let _ = write!(
                o,
                r#"<td class="num">{}</td><td class="num">{}</td>"#,
                cell("ndcg@10"),
                cell("recall@100")
            );
        }
        o.push_str("</tr>");
    }
    o.push_str("</table></body></html>\n");
    Ok(o)
}

/// A rendered report: its HTML, the runs it shows, and the two runs it compares (ids, baseline
/// first), if there were two.
pub struct Report {
    pub html: String,
    pub runs: usize,
    pub compared: Option<(String, String)>,
}

/// The report of the recorded runs (of `collection`, or all), comparing the last two runs of the
/// newest run's collection; `None` when no run is recorded. What `quarry eval report` writes and
/// `GET /v1/collections/{c}/eval/report` serves.
pub fn latest(
    engine: &Engine,
    collection: Option<&str>,
    mode: Option<&str>,
) -> Result<Option<Report>> {
    let runs = engine.eval_runs(collection)?;
    let Some(newest) = runs.last() else {
        return Ok(None);
    };
    let same: Vec<&EvalRunSummary> = runs
        .iter()
        .filter(|r| r.collection == newest.collection)
        .collect();
    let pair = match same.as_slice() {
        [.., a, b] => Some((engine.eval_run(&a.id)?, engine.eval_run(&b.id)?)),
        _ => None,
    };
    Ok(Some(Report {
        html: render(&runs, pair.as_ref().map(|(a, b)| (a, b)), mode)?,
        runs: runs.len(),
        compared: pair.map(|(a, b)| (a.summary.id, b.summary.id)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: &str, ndcg: [f64; 2], ranked: [&str; 2]) -> EvalRun {
        // built from JSON as stored, so the fixture reads as a run does
        let metrics = |ndcg: f64, extra: serde_json::Value| {
            let mut m = json!({"ndcg@10": ndcg});
            if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
                m.extend(extra.clone());
            }
            m
        };
        let mode = metrics(
            (ndcg[0] + ndcg[1]) / 2.0,
            json!({"recall@100": 1.0, "mrr@10": 0.5, "degraded": 0,
                   "latency_ms": {"p50": 1.0, "p95": 1.0, "p99": 1.0}}),
        );
        serde_json::from_value(json!({
            "id": id,
            "collection": "c<1>",
            "created_at": 1_795_701_845,
            "config": {"fusion": {"method": "rrf", "k": 60.0}, "dataset": "d", "split": "test"},
            "metrics": {"hybrid": mode},
            "queries": {"hybrid": {
                "q<script>": {"ranked": [ranked[0]], "relevant": ["x"], "metrics": metrics(ndcg[0], json!({}))},
                "q2": {"ranked": [ranked[1]], "relevant": ["x"], "metrics": metrics(ndcg[1], json!({}))},
            }},
        }))
        .unwrap()
    }

    #[test]
    fn the_report_is_self_contained_escaped_and_charts_every_run() {
        let a = run("r1", [1.0, 0.5], ["x", "y"]);
        let b = run("r2", [0.5, 0.5], ["y", "y"]);
        let html = render(
            &[a.summary.clone(), b.summary.clone()],
            Some((&a, &b)),
            None,
        )
        .unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        // no script and nothing fetched: the only URL is the SVG namespace
        assert!(!html.contains("<script"), "unescaped query id");
        assert!(html.contains("q&lt;script&gt;"));
        assert!(html.contains("c&lt;1&gt;"));
        let without_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!without_ns.contains("http"), "external reference");
        // three trend charts and one delta chart
        assert_eq!(html.matches("<svg").count(), 4);
        assert_eq!(html.matches("<polyline").count(), 3);
        // exactly one changed query, worse, drawn as one red bar
        assert!(html.contains("1 queries changed: 1 worse (red), 0 better (green)"));
        assert_eq!(html.matches("fill=\"#d62728\"><title>").count(), 1);
    }
}
