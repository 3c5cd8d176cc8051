//! Tests of MMR: selections computed by hand, and properties over random lists.

use super::*;
use proptest::prelude::*;

fn some(vectors: &[Vec<f32>]) -> Vec<Option<&[f32]>> {
    vectors.iter().map(|v| Some(v.as_slice())).collect()
}

#[test]
fn relevance_is_min_max_normalised() {
    assert_eq!(relevance(&[2.0, 1.0, 0.0]), vec![1.0, 0.5, 0.0]);
    assert_eq!(relevance(&[0.03, 0.02]), vec![1.0, 0.0]);
    // all equal, or one: each is 1
    assert_eq!(relevance(&[0.4, 0.4, 0.4]), vec![1.0; 3]);
    assert_eq!(relevance(&[7.0]), vec![1.0]);
    assert_eq!(relevance(&[]), Vec::<f32>::new());
    assert_eq!(relevance(&[1.0, f32::NAN, 0.0]), vec![1.0, 0.0, 0.0]);
}

/// Scores 1, 0.9, 0.5 (relevance 1, 0.8, 0); item 1 is item 0's twin, item 2 orthogonal.
#[test]
fn a_duplicate_gives_way_to_a_different_item() {
    let v = [vec![1.0, 0.0], vec![2.0, 0.0], vec![0.0, 1.0]];
    let scores = [1.0, 0.9, 0.5];
    // λ = 0.5: after 0, item 1 is worth 0.5·0.8 − 0.5·1 = −0.1, item 2 0.5·0 − 0.5·0 = 0
    assert_eq!(mmr(&scores, &some(&v), 0.5, 3), vec![0, 2, 1]);
    // λ = 0.9: item 1 is worth 0.9·0.8 − 0.1·1 = 0.62 > 0
    assert_eq!(mmr(&scores, &some(&v), 0.9, 3), vec![0, 1, 2]);
    assert_eq!(mmr(&scores, &some(&v), 1.0, 3), vec![0, 1, 2]);
    // λ = 0: the first pick has no one to differ from, so all are worth 0 and the first wins
    assert_eq!(mmr(&scores, &some(&v), 0.0, 3), vec![0, 2, 1]);
}

/// Scores 3, 2, 1, 0 (relevance 1, 2/3, 1/3, 0); cos(0,1) = 0.8, cos(0,2) = 0, cos(0,3) = −1,
/// cos(1,2) = 0.6, cos(1,3) = −0.8, cos(2,3) = 0.
#[test]
fn hand_computed_selection() {
    let v = [
        vec![1.0, 0.0],
        vec![0.8, 0.6],
        vec![0.0, 1.0],
        vec![-1.0, 0.0],
    ];
    let scores = [3.0, 2.0, 1.0, 0.0];
    // λ = 0.7. Pick 1: 0 (0.7). Pick 2: item 1 0.7·2/3 − 0.3·0.8 = 0.2267, item 2
    // 0.7·1/3 − 0 = 0.2333, item 3 0 + 0.3·1 = 0.3, so 3. Pick 3: the closest of 1 stays 0.8,
    // of 2 stays 0: 2 (0.2333 > 0.2267). Then 1.
    assert_eq!(mmr(&scores, &some(&v), 0.7, 4), vec![0, 3, 2, 1]);
    assert_eq!(mmr(&scores, &some(&v), 0.7, 2), vec![0, 3]);
    // λ = 0.9. Pick 2: item 1 0.6 − 0.08 = 0.52, item 2 0.3, item 3 0 + 0.1 = 0.1, so 1.
    // Pick 3: item 2 0.3 − 0.1·0.6 = 0.24, item 3 0 − 0.1·max(−1, −0.8) = 0.08, so 2.
    assert_eq!(mmr(&scores, &some(&v), 0.9, 4), vec![0, 1, 2, 3]);
    // asking for more than there is gives all of them
    assert_eq!(mmr(&scores, &some(&v), 0.7, 10), vec![0, 3, 2, 1]);
    assert_eq!(mmr(&scores, &some(&v), 0.7, 0), Vec::<usize>::new());
}

#[test]
fn an_item_without_a_vector_is_like_nothing() {
    let (a, b) = (vec![1.0, 0.0], vec![1.0, 0.0]);
    let scores = [1.0, 0.9, 0.8];
    // item 1 (a twin of 0) is worth 0.5·0.5 − 0.5 = −0.25; item 2, without a vector, 0
    let vectors = [Some(a.as_slice()), Some(b.as_slice()), None];
    assert_eq!(mmr(&scores, &vectors, 0.5, 3), vec![0, 2, 1]);
    // a zero vector counts as none
    let zero = vec![0.0, 0.0];
    let vectors = [
        Some(a.as_slice()),
        Some(b.as_slice()),
        Some(zero.as_slice()),
    ];
    assert_eq!(mmr(&scores, &vectors, 0.5, 3), vec![0, 2, 1]);
}

#[test]
fn dot_matches_the_plain_sum() {
    let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5 - 3.0).collect();
    let b: Vec<f32> = (0..21).map(|i| 1.0 - i as f32 * 0.25).collect();
    let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    assert!(
        (dot(&a, &b) - plain).abs() < 1e-4,
        "{} vs {plain}",
        dot(&a, &b)
    );
}

#[test]
fn lambda_is_checked_and_the_error_names_the_option() {
    for bad in [-0.1, 1.01, f32::NAN, f32::INFINITY] {
        let e = Diversify { lambda: bad }.validate().unwrap_err();
        assert!(e.to_string().contains("diversify"), "{e}");
        assert!(e.to_string().contains("lambda"), "{e}");
    }
    for good in [0.0, 0.7, 1.0] {
        assert_eq!(Diversify { lambda: good }.validate(), Ok(()));
    }
    let parsed: Diversify = serde_json::from_str(r#"{"lambda": 0.7}"#).unwrap();
    assert_eq!(parsed, Diversify { lambda: 0.7 });
    assert!(serde_json::from_str::<Diversify>(r#"{"lambda": 0.7, "k": 3}"#).is_err());
}

/// Scores best first, with ties, and vectors (some missing, some zero) of `dims` dimensions.
fn list() -> impl Strategy<Value = (Vec<f32>, Vec<Option<Vec<f32>>>)> {
    (1usize..5, 0usize..30).prop_flat_map(|(dims, n)| {
        (
            prop::collection::vec(prop_oneof![Just(0.5f32), 0.0f32..1.0], n),
            prop::collection::vec(
                prop::option::weighted(0.9, prop::collection::vec(-1.0f32..1.0, dims)),
                n,
            ),
        )
            .prop_map(|(mut scores, vectors)| {
                scores.sort_by(|a, b| b.total_cmp(a));
                (scores, vectors)
            })
    })
}

proptest! {
    #[test]
    fn lambda_one_keeps_the_fused_order((scores, vectors) in list(), k in 0usize..35) {
        let refs: Vec<Option<&[f32]>> = vectors.iter().map(Option::as_deref).collect();
        let want: Vec<usize> = (0..k.min(scores.len())).collect();
        prop_assert_eq!(mmr(&scores, &refs, 1.0, k), want);
    }

    #[test]
    fn picks_k_distinct_items_the_best_first(
        (scores, vectors) in list(),
        lambda in 0.0f32..=1.0,
        k in 0usize..35,
    ) {
        let refs: Vec<Option<&[f32]>> = vectors.iter().map(Option::as_deref).collect();
        let order = mmr(&scores, &refs, lambda, k);
        prop_assert_eq!(order.len(), k.min(scores.len()));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), order.len());
        prop_assert!(order.iter().all(|i| *i < scores.len()));
        // nothing picked yet to differ from: the first pick is the best ranked
        if !order.is_empty() {
            prop_assert_eq!(order[0], 0);
        }
        // all of them: a permutation of the list
        let all = mmr(&scores, &refs, lambda, scores.len());
        let mut all_sorted = all.clone();
        all_sorted.sort_unstable();
        prop_assert_eq!(all_sorted, (0..scores.len()).collect::<Vec<_>>());
        // the first k of all are the k picked
        prop_assert_eq!(&all[..order.len()], order.as_slice());
    }
}
