//! The requantize job: the active version's index rebuilt with another quantization from the
//! stored vectors (nothing embedded), writes during the build kept, the same answers after,
//! another process switched to the new index, and the old folder gone for good.

use crate::engine::{Engine, EngineOptions};
use crate::jobs;
use crate::test_support::{Model, Models};
use crate::vectors::{Quantization, VectorParams};
use quarry_core::{ChunkOptions, ChunkSizer, GroupBy, Mode, Principal, QueryOptions};
use std::path::Path;
use std::sync::Arc;

fn engine(dir: &Path, model: &Arc<Model>) -> Engine {
    Engine::open(
        dir,
        EngineOptions {
            chunk: ChunkOptions {
                max_tokens: 400,
                overlap: 0,
                sizer: ChunkSizer::Chars,
                context_chars: 0,
            },
            embedder: "a".into(),
            embedders: Some(Arc::new(Models(vec![("a", model.clone())]))),
            vector: VectorParams {
                quantization: Quantization::None,
                segment_points: 64,
                exact_threshold: 0,
                ..VectorParams::default()
            },
            ..EngineOptions::default()
        },
    )
    .unwrap()
}

fn text(i: usize) -> String {
    format!("note {i} on topic{} and theme{}", i % 7, i % 13)
}

/// The top 5 documents of a vector query for each of the first 40 texts.
fn answers(engine: &Engine) -> Vec<Vec<String>> {
    let searcher = engine.searcher("c").unwrap();
    (0..40)
        .map(|i| {
            let q = QueryOptions::new(text(i), 5, Mode::Vector, GroupBy::Document).unwrap();
            let r = searcher.search(&q, &Principal::local_admin()).unwrap();
            assert!(!r.degraded, "{:?}", r.warnings);
            r.results.into_iter().map(|h| h.doc_id).collect()
        })
        .collect()
}

/// Of `b`'s top-5 lists, the fraction of `a`'s documents they hold.
fn overlap(a: &[Vec<String>], b: &[Vec<String>]) -> f64 {
    let shared: usize = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.iter().filter(|d| y.contains(d)).count())
        .sum();
    shared as f64 / a.iter().map(Vec::len).sum::<usize>() as f64
}

fn vector_folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("collections/c/vectors"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The names of the segment folders of `folder`, sorted (each seal names its segment anew);
/// none when it has no `segments` folder.
fn segment_names(dir: &Path, folder: &str) -> Vec<String> {
    let path = dir
        .join("collections/c/vectors")
        .join(folder)
        .join("segments");
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn segments(dir: &Path, folder: &str) -> usize {
    segment_names(dir, folder).len()
}

#[test]
fn a_requantize_rebuilds_from_stored_vectors_and_every_process_switches_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::new("noise", 24, true);
    let writer = engine(dir.path(), &model);
    for i in 0..300 {
        crate::test_support::put(&writer, "c", &format!("d{i}"), &text(i));
    }
    writer.flush().unwrap();
    let version = writer.versions("c").unwrap().remove(0);
    assert_eq!(version.quantization, Quantization::None);
    assert_eq!(vector_folders(dir.path()), vec![version.id.clone()]);
    assert_eq!(segments(dir.path(), &version.id), 0, "`none` never seals");
    let before = answers(&writer);
    // another process, serving from the old index
    let follower = engine(dir.path(), &model);
    assert_eq!(answers(&follower), before);

    let job = jobs::enqueue_requantize(&writer, "c", Quantization::Int8).unwrap();
    let busy = jobs::enqueue_requantize(&writer, "c", Quantization::Int8).unwrap_err();
    assert!(matches!(busy, crate::Error::Conflict(_)), "{busy}");
    let embedded = model.texts();
    let late = std::sync::atomic::AtomicUsize::new(0);
    let done = jobs::run(&writer, &job.id, &|j| {
        assert_eq!(j.state.as_str(), "running");
        // a write while the new index is built: it must reach the new index
        if j.processed > 0 && late.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            let n = model.texts();
            crate::test_support::put(&writer, "c", "late", "a late note on nothing");
            late.store(model.texts() - n, std::sync::atomic::Ordering::SeqCst);
        }
    })
    .unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    let late = late.into_inner();
    assert!(late > 0, "the write during the build was embedded");
    assert_eq!(model.texts(), embedded + late, "nothing else was embedded");
    let Some(crate::catalog::JobResult::Requantize(r)) = &done.result else {
        panic!("{:?}", done.result)
    };
    assert_eq!((r.points, r.without_vector), (301, 0));
    assert_eq!(r.quantization, Quantization::Int8);

    let folder = format!("{}@int8-{}", version.id, job.id);
    assert_eq!(
        vector_folders(dir.path()),
        vec![folder.clone()],
        "the old folder is gone"
    );
    assert!(
        segments(dir.path(), &folder) >= 1,
        "301 points sealed (segments of 64)"
    );
    let now = writer.versions("c").unwrap().remove(0);
    assert_eq!(
        (now.id.as_str(), now.quantization),
        (version.id.as_str(), Quantization::Int8)
    );
    let after = answers(&writer);
    assert!(overlap(&before, &after) >= 0.95, "{before:?}\n{after:?}");
    // Every chunk has one point, the late one included: a query for all of them finds each once.
    let late_hit = |e: &Engine| {
        let q = QueryOptions::new("a late note", 1000, Mode::Vector, GroupBy::Document).unwrap();
        let r = e
            .searcher("c")
            .unwrap()
            .search(&q, &Principal::local_admin())
            .unwrap();
        let mut ids: Vec<String> = r.results.into_iter().map(|h| h.doc_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 301);
        ids.into_iter().find(|d| d == "late").unwrap_or_default()
    };
    assert_eq!(late_hit(&writer), "late");
    let again = jobs::enqueue_requantize(&writer, "c", Quantization::Int8).unwrap_err();
    assert_eq!(again.kind(), crate::ErrorKind::Input, "{again}");

    // The follower opens the new index at its next query, and its flush never writes the old
    // index back into the folder that was removed.
    assert_eq!(late_hit(&follower), "late");
    assert!(overlap(&before, &answers(&follower)) >= 0.95);
    follower.flush().unwrap();
    writer.flush().unwrap();
    assert_eq!(vector_folders(dir.path()), vec![folder.clone()]);
    drop((writer, follower));

    // A restart loads the new index's dump, and a requantize back to `none` drops the segments.
    let reopened = engine(dir.path(), &model);
    assert_eq!(
        reopened.versions("c").unwrap()[0].quantization,
        Quantization::Int8
    );
    assert!(overlap(&before, &answers(&reopened)) >= 0.95);

    // To binary codes: segments again, every chunk found once, the same answers.
    let binary = jobs::enqueue_requantize(&reopened, "c", Quantization::Binary).unwrap();
    let embedded = model.texts();
    let binary = jobs::run(&reopened, &binary.id, &|_| {}).unwrap();
    assert_eq!(binary.state.as_str(), "succeeded", "{:?}", binary.error);
    assert_eq!(model.texts(), embedded, "nothing embedded");
    let folders = vector_folders(dir.path());
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert!(folders[0].contains("@binary-"), "{folders:?}");
    assert!(segments(dir.path(), &folders[0]) > 0);
    assert_eq!(
        reopened.versions("c").unwrap()[0].quantization,
        Quantization::Binary
    );
    assert!(overlap(&before, &answers(&reopened)) >= 0.95);
    assert_eq!(late_hit(&reopened), "late");

    let back = jobs::enqueue_requantize(&reopened, "c", Quantization::None).unwrap();
    let embedded = model.texts();
    let back = jobs::run(&reopened, &back.id, &|_| {}).unwrap();
    assert_eq!(model.texts(), embedded, "nothing embedded");
    assert_eq!(back.state.as_str(), "succeeded", "{:?}", back.error);
    let folders = vector_folders(dir.path());
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert_eq!(segments(dir.path(), &folders[0]), 0);
    assert_eq!(
        reopened.versions("c").unwrap()[0].quantization,
        Quantization::None
    );
    assert!(overlap(&before, &answers(&reopened)) >= 0.95);
    assert_eq!(late_hit(&reopened), "late");
}

#[test]
fn a_cancelled_requantize_leaves_the_index_and_its_folder_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::new("noise", 24, true);
    let e = engine(dir.path(), &model);
    for i in 0..100 {
        crate::test_support::put(&e, "c", &format!("d{i}"), &text(i));
    }
    let before = answers(&e);
    let version = e.versions("c").unwrap().remove(0);
    let job = jobs::enqueue_requantize(&e, "c", Quantization::Int8).unwrap();
    let done = jobs::run(&e, &job.id, &|j| {
        jobs::cancel(&e, &j.id).unwrap();
    })
    .unwrap();
    assert_eq!(done.state.as_str(), "cancelled", "{:?}", done.error);
    assert_eq!(vector_folders(dir.path()), vec![version.id.clone()]);
    assert_eq!(e.versions("c").unwrap()[0].quantization, Quantization::None);
    assert_eq!(answers(&e), before);
    // and the collection can be requantized after
    let again = jobs::enqueue_requantize(&e, "c", Quantization::Int8).unwrap();
    let again = jobs::run(&e, &again.id, &|_| {}).unwrap();
    assert_eq!(again.state.as_str(), "succeeded", "{:?}", again.error);
}

#[test]
fn a_rebuild_builds_the_index_again_with_its_own_quantization_and_embeds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::new("noise", 24, true);
    let e = engine(dir.path(), &model);
    for i in 0..150 {
        crate::test_support::put(&e, "c", &format!("d{i}"), &text(i));
    }
    e.flush().unwrap();
    let before = answers(&e);
    let version = e.versions("c").unwrap().remove(0);
    let embedded = model.texts();
    let job = jobs::enqueue_rebuild_index(&e, "c").unwrap();
    let busy = jobs::enqueue_rebuild_index(&e, "c").unwrap_err();
    assert!(matches!(busy, crate::Error::Conflict(_)), "{busy}");
    let done = jobs::run(&e, &job.id, &|_| {}).unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    assert_eq!(model.texts(), embedded, "nothing embedded");
    let Some(crate::catalog::JobResult::Requantize(r)) = &done.result else {
        panic!("{:?}", done.result)
    };
    assert_eq!(
        (r.points, r.quantization),
        (150, Quantization::None),
        "the index's own quantization"
    );
    assert_eq!(
        vector_folders(dir.path()),
        vec![format!("{}@none-{}", version.id, job.id)],
        "built in a folder of its own, the old one gone"
    );
    assert_eq!(e.versions("c").unwrap()[0].quantization, Quantization::None);
    assert!(overlap(&before, &answers(&e)) >= 0.95);
}

/// A requantize that switched the version to its folder and was interrupted before its end was
/// recorded (the job still `running`) only records its end when it runs again: it does not
/// build that folder again, which is the live index this process and others read and dump into
/// (it removed the folder and wrote new segments into it, under a server serving from it).
#[test]
fn a_requantize_resumed_after_its_switch_leaves_the_live_folder_alone() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::new("noise", 24, true);
    let e = engine(dir.path(), &model);
    for i in 0..200 {
        crate::test_support::put(&e, "c", &format!("d{i}"), &text(i));
    }
    let version = e.versions("c").unwrap().remove(0);
    let job = jobs::enqueue_requantize(&e, "c", Quantization::Int8).unwrap();
    let done = jobs::run(&e, &job.id, &|_| {}).unwrap();
    assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.error);
    let folder = format!("{}@int8-{}", version.id, job.id);
    let sealed = segment_names(dir.path(), &folder);
    assert!(!sealed.is_empty(), "200 points sealed (segments of 64)");
    let answered = answers(&e);

    // as after a crash between the switch and the job's end
    e.catalog().start_job(&job.id).unwrap();
    assert_eq!(jobs::run_pending(&e).unwrap(), 1);
    let again = jobs::job(&e, &job.id).unwrap();
    assert_eq!(again.state.as_str(), "succeeded", "{:?}", again.error);
    let Some(crate::catalog::JobResult::Requantize(r)) = &again.result else {
        panic!("{:?}", again.result)
    };
    assert_eq!((r.points, r.quantization), (200, Quantization::Int8));
    assert_eq!(vector_folders(dir.path()), vec![folder.clone()]);
    assert_eq!(
        segment_names(dir.path(), &folder),
        sealed,
        "not built again"
    );
    assert_eq!(answers(&e), answered);
    drop(e);
    // a process that serves nothing (a CLI) counts the points from the dump
    let cli = engine(dir.path(), &model);
    cli.catalog().start_job(&job.id).unwrap();
    assert_eq!(jobs::run_pending(&cli).unwrap(), 1);
    let Some(crate::catalog::JobResult::Requantize(r)) = jobs::job(&cli, &job.id).unwrap().result
    else {
        panic!("no result")
    };
    assert_eq!(r.points, 200);
    assert_eq!(segment_names(dir.path(), &folder), sealed);
    assert_eq!(answers(&cli), answered);
}
