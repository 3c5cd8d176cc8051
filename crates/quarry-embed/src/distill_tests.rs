//! Tests of the distillation: PCA against a cloud of known axes, and distills of the cached
//! MiniLM over a limited vocabulary (determinism, `--force`, added words).

use super::*;
use crate::StaticEmbedder;
use quarry_core::InputKind;
use quarry_core::embed::cosine;
use std::collections::HashMap;

/// Points spread along `(1, 1, 0)/√2` (variance 100), `(0, 0, 1)` (variance 1) and
/// `(1, -1, 0)/√2` (variance 0.01), shifted by `(5, -3, 2)`.
fn cloud() -> Vec<f32> {
    let mut rng = quarry_core::rng::SplitMix64::new(7);
    let mut x = Vec::new();
    for _ in 0..2000 {
        let (g0, g1) = rng.gaussians();
        let (g2, _) = rng.gaussians();
        let (a, b, c) = (10.0 * g0, g1, 0.1 * g2);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        x.extend([
            (5.0 + s * a + s * c) as f32,
            (-3.0 + s * a - s * c) as f32,
            (2.0 + b) as f32,
        ]);
    }
    x
}

#[test]
fn pca_finds_the_axes_of_a_known_cloud_in_order_with_fixed_signs() {
    let x = cloud();
    let n = x.len() / 3;
    let (p, explained) = pca(&x, n, 3, 2);
    assert_eq!(p.len(), n * 2);
    // Two of the three variances (100 + 1 of 101.01) are kept.
    assert!((explained - 101.0 / 101.01).abs() < 0.002, "{explained}");
    // Centred, and the first component carries the large variance, the second the unit one.
    let col = |c: usize| p.iter().skip(c).step_by(2).copied().collect::<Vec<f64>>();
    let (c0, c1) = (col(0), col(1));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>() / (v.len() - 1) as f64;
    assert!(mean(&c0).abs() < 1e-9 && mean(&c1).abs() < 1e-9);
    assert!((var(&c0) / 100.0 - 1.0).abs() < 0.1, "{}", var(&c0));
    assert!((var(&c1) - 1.0).abs() < 0.1, "{}", var(&c1));
    // Uncorrelated.
    let cov: f64 = c0.iter().zip(&c1).map(|(a, b)| a * b).sum::<f64>() / (n - 1) as f64;
    assert!(cov.abs() < 1e-6, "{cov}");
    // The first component is (1, 1, 0)/√2 turned positive: a point moved along it projects
    // higher, and the projection of the first point equals the hand computed one.
    let s = std::f64::consts::FRAC_1_SQRT_2;
    let centre: Vec<f64> = (0..3)
        .map(|j| {
            x.iter()
                .skip(j)
                .step_by(3)
                .map(|v| f64::from(*v))
                .sum::<f64>()
                / n as f64
        })
        .collect();
    let by_hand = s * (f64::from(x[0]) - centre[0]) + s * (f64::from(x[1]) - centre[1]);
    assert!((p[0] - by_hand).abs() < 0.01, "{} against {by_hand}", p[0]);
}

/// The cached all-MiniLM-L6-v2 (CI fetches it with `quarry model pull` before the tests).
fn teacher() -> LocalEmbedder {
    let dir = crate::fetch::model_cache_dir().join(crate::fetch::DEFAULT_MODEL);
    assert!(
        dir.join("model.safetensors").is_file(),
        "the model is not cached in {}: run `cargo run -- model pull` first",
        dir.display()
    );
    LocalEmbedder::load(&dir, crate::fetch::DEFAULT_MODEL).unwrap()
}

#[test]
fn distilling_is_deterministic_and_gives_a_loadable_static_model() {
    let teacher = teacher();
    let tmp = tempfile::tempdir().unwrap();
    let options = DistillOptions {
        dims: 16,
        limit: Some(1200),
        ..DistillOptions::default()
    };
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let progress = |done: usize, total: usize| {
        assert!(done <= total && total == 1200);
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let a = distill(
        &teacher,
        options,
        &[],
        &[],
        &tmp.path().join("a"),
        false,
        &progress,
    )
    .unwrap();
    let b = distill(
        &teacher,
        options,
        &[],
        &[],
        &tmp.path().join("b"),
        false,
        &|_, _| {},
    )
    .unwrap();
    assert_eq!(calls.into_inner(), 1200usize.div_ceil(options.batch));
    assert_eq!((a.tokens, a.dimensions), (1200, 16));
    assert!(a.explained_variance > 0.0 && a.explained_variance < 1.0);
    assert_eq!(a.revision, b.revision);
    assert_eq!(
        fs::read(a.dir.join("model.safetensors")).unwrap(),
        fs::read(b.dir.join("model.safetensors")).unwrap()
    );
    // No folder is left half-written, and an existing one is not replaced.
    let names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let again = distill(&teacher, options, &[], &[], &a.dir, false, &|_, _| {});
    assert!(matches!(again, Err(EmbedError::Model(m)) if m.contains("exists already")));

    let s = StaticEmbedder::load(&a.dir, "t").unwrap();
    assert_eq!(s.spec().revision, a.revision);
    assert_eq!(s.spec().dimensions, 16);
    // Special and [unusedN] tokens have no row; the first kept tokens (punctuation and
    // characters in BERT's vocabulary) do, weighted by SIF below 1.
    let v = s
        .embed(&["!", "[unused5]", "a b c"], InputKind::Document)
        .unwrap();
    assert!(v[0].iter().any(|x| *x != 0.0));
    assert!(v[2].iter().any(|x| *x != 0.0));
    assert!(cosine(&v[0], &v[2]).abs() < 0.999);

    // Bad options are refused before any work.
    for bad in [
        DistillOptions { dims: 0, ..options },
        DistillOptions {
            dims: 385,
            ..options
        },
        DistillOptions {
            sif: 1.5,
            ..options
        },
        DistillOptions {
            limit: Some(10),
            ..options
        },
    ] {
        let r = distill(&teacher, bad, &[], &[], &a.dir, true, &|_, _| {});
        assert!(matches!(r, Err(EmbedError::Model(_))), "{bad:?}");
    }
    // ... and a model they would have replaced (--force) is kept.
    assert_eq!(
        StaticEmbedder::load(&a.dir, "t").unwrap().spec().revision,
        a.revision
    );
    // --force replaces it once the new one is complete, and leaves nothing beside it.
    let other = DistillOptions { dims: 8, ..options };
    let c = distill(&teacher, other, &[], &[], &a.dir, true, &|_, _| {}).unwrap();
    assert_eq!(
        StaticEmbedder::load(&a.dir, "t").unwrap().spec().dimensions,
        8
    );
    assert_ne!(c.revision, a.revision);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
}

#[test]
fn added_words_get_rows_of_their_own_and_count_as_their_pieces() {
    let teacher = teacher();
    let mut counts = HashMap::new();
    let text = "Glucocorticoids and the GLUCOCORTICOIDS: glucocorticoid-receptor [UNK] ✓";
    count_split_words(teacher.untruncated_tokenizer(), text, &mut counts).unwrap();
    // Only words cut into pieces, lower-cased as the uncased tokenizer normalises them.
    assert_eq!(counts.get("glucocorticoids"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("glucocorticoid"), Some(&1), "{counts:?}");
    assert!(!counts.contains_key("and") && !counts.contains_key("the"));
    assert!(counts.keys().all(|w| !w.contains('[') && !w.contains('#')));

    let tmp = tempfile::tempdir().unwrap();
    let options = DistillOptions {
        dims: 16,
        limit: Some(1200),
        ..DistillOptions::default()
    };
    let words: Vec<String> = [
        "glucocorticoids",
        "the",
        "##x",
        "two words",
        "glucocorticoids",
    ]
    .map(String::from)
    .to_vec();
    let made = distill(
        &teacher,
        options,
        &words,
        &[],
        &tmp.path().join("m"),
        false,
        &|_, _| {},
    )
    .unwrap();
    // `the` is in the vocabulary, `##x` and `two words` cannot be words, the repeat is one.
    assert_eq!(made.words, 1);
    let plain = distill(
        &teacher,
        options,
        &[],
        &[],
        &tmp.path().join("p"),
        false,
        &|_, _| {},
    )
    .unwrap();
    assert_ne!(made.revision, plain.revision);
    assert!(
        made.dir
            .join(crate::static_model::TEACHER_TOKENIZER)
            .is_file()
    );
    assert!(
        !plain
            .dir
            .join(crate::static_model::TEACHER_TOKENIZER)
            .exists()
    );

    let s = StaticEmbedder::load(&made.dir, "t").unwrap();
    let p = StaticEmbedder::load(&plain.dir, "t").unwrap();
    // Counted as the teacher counts, also words that only start with an added one (which the
    // extended tokenizer cuts otherwise than the teacher's).
    for text in [
        "glucocorticoids",
        "glucocorticoid glucocorticoidal glucocorticoidsx",
        "the glucocorticoids of mice",
        "",
    ] {
        assert_eq!(s.count_tokens(text), teacher.count_tokens(text), "{text}");
    }
    // The word embeds through its own row now: not as the mean of its pieces.
    let with = s.embed(&["glucocorticoids"], InputKind::Document).unwrap();
    let without = p.embed(&["glucocorticoids"], InputKind::Document).unwrap();
    assert!(with[0].iter().any(|x| *x != 0.0));
    assert!(cosine(&with[0], &without[0]) < 0.999);
}

/// Fitting to the teacher's vectors of sample texts brings the static vectors of *other* texts
/// closer to the teacher's (the mean cosine rises), records the fit, and is deterministic.
#[test]
fn fitting_to_sample_texts_moves_held_out_texts_towards_the_teacher() {
    let teacher = teacher();
    let tmp = tempfile::tempdir().unwrap();
    let options = DistillOptions {
        dims: 32,
        limit: Some(3000),
        ..DistillOptions::default()
    };
    let topics = [
        ("the cell", "protein binds the receptor in the membrane"),
        ("a river", "water flows down the valley to the sea"),
        ("the court", "the judge heard the case and the law"),
        ("a game", "the team won the match in the final minute"),
        ("the market", "prices rose as the bank cut its rates"),
        ("the band", "the song was played live on the radio"),
    ];
    // Samples and held-out texts from the same topics, different sentences.
    let texts = |k: usize| -> Vec<String> {
        topics
            .iter()
            .enumerate()
            .map(|(i, (a, b))| format!("{a} {} {b} {}", ["is", "was", "will be"][(i + k) % 3], k))
            .collect()
    };
    let samples: Vec<String> = (0..8).flat_map(texts).collect();
    let held_out: Vec<String> = topics
        .iter()
        .map(|(a, b)| format!("{b}, said {a}"))
        .collect();
    let plain = distill(
        &teacher,
        options,
        &[],
        &[],
        &tmp.path().join("p"),
        false,
        &|_, _| {},
    )
    .unwrap();
    let total = std::sync::atomic::AtomicUsize::new(0);
    let fitted = distill(
        &teacher,
        options,
        &[],
        &samples,
        &tmp.path().join("f"),
        false,
        &|_, t| total.store(t, std::sync::atomic::Ordering::Relaxed),
    )
    .unwrap();
    assert_eq!(total.into_inner(), 3000 + samples.len());
    assert_eq!(
        (plain.fitted_samples, fitted.fitted_samples),
        (0, samples.len())
    );
    assert_ne!(plain.revision, fitted.revision);
    let again = distill(
        &teacher,
        options,
        &[],
        &samples,
        &tmp.path().join("g"),
        false,
        &|_, _| {},
    )
    .unwrap();
    assert_eq!(again.revision, fitted.revision, "the fit is deterministic");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(fitted.dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["quarry"]["fitted_samples"], samples.len());

    // Agreement with the teacher: cosines between pairs of held-out texts.
    let refs: Vec<&str> = held_out.iter().map(String::as_str).collect();
    let want = teacher.embed(&refs, InputKind::Document).unwrap();
    let error = |dir: &Path| -> f64 {
        let s = StaticEmbedder::load(dir, "t").unwrap();
        let got = s.embed(&refs, InputKind::Document).unwrap();
        let mut e = 0.0;
        for i in 0..refs.len() {
            for j in 0..i {
                e += f64::from(cosine(&got[i], &got[j]) - cosine(&want[i], &want[j])).powi(2);
            }
        }
        e
    };
    let (before, after) = (error(&plain.dir), error(&fitted.dir));
    assert!(
        after < before,
        "pairwise cosine error {after} after the fit, {before} before"
    );
}
