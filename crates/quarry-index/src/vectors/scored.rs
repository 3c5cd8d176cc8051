//! [`Scored`], a point with its similarity, ordered for heaps of candidates.

/// A point by similarity, ties to the smaller tag (`(chunk key, point id)` in an exact scan, a
/// point id in the flat graph): a total order for heaps of candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Scored<T>(pub(super) f32, pub(super) T);
impl<T: Ord> Eq for Scored<T> {}
impl<T: Ord> PartialOrd for Scored<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Scored<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}
