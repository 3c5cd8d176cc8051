//! The memory of a sealed segment's rows ([`Rows`]): an anonymous mapping the kernel is asked to
//! back with transparent huge pages.
//!
//! A graph walk reads rows at random across every sealed segment (about 0.5 GB at a million
//! int8 points): with 4 KiB pages nearly every row read also misses the TLB and walks the page
//! tables; with 2 MiB pages the whole index is a few hundred TLB entries.
//!
//! The allocator is built with `no_thp`: mimalloc turns huge pages off for the process
//! (`PR_SET_THP_DISABLE`), so that its heap does not grow by partly used huge pages. Where the
//! system's policy is `madvise`, the first [`Rows::zeroed`] clears that flag once: a region
//! that does not ask for huge pages (mimalloc's heap, built not to ask) stays on small pages. What
//! that leaves open, on purpose: the flag is cleared for the rest of the process and for the
//! processes it starts after, whoever set it (an operator's wrapper too); a policy switched to
//! `always` later, or a kernel's per-size policy (`hugepages-<size>/enabled`) of `always`, then
//! reaches the heap. Under the policy `always` the flag stays set and the rows get small pages
//! (the allocator's choice wins); under `never` the advice is a no-op. Faults in an advised
//! region may compact memory first (`defrag = madvise`, the default): the cost of a segment's
//! load, not of its queries. Rows of less than 2 MiB, which a huge page could not back, stay on
//! the heap.

use memmap2::MmapMut;
use std::sync::Once;

/// Bytes of a (2 MiB) transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

/// Zeroed bytes for rows: a mapping advised for huge pages, or, when the system refuses the
/// mapping, an ordinary allocation.
pub(super) enum Rows {
    Mapped(MmapMut),
    Heap(Vec<u8>),
}

impl Rows {
    /// `len` zero bytes.
    pub(super) fn zeroed(len: usize) -> Rows {
        if len < HUGE_PAGE {
            return Rows::Heap(vec![0; len]);
        }
        static ALLOW: Once = Once::new();
        ALLOW.call_once(allow_huge_pages);
        match MmapMut::map_anon(len) {
            Ok(map) => {
                // advice the kernel may decline (no THP support): the rows work either way
                #[cfg(target_os = "linux")]
                let _ = map.advise(memmap2::Advice::HugePage);
                Rows::Mapped(map)
            }
            Err(e) => {
                tracing::debug!("no anonymous mapping of {len} bytes ({e}); rows on the heap");
                Rows::Heap(vec![0; len])
            }
        }
    }

    pub(super) fn as_slice(&self) -> &[i8] {
        bytemuck::cast_slice(match self {
            Rows::Mapped(m) => &m[..],
            Rows::Heap(v) => v,
        })
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [i8] {
        bytemuck::cast_slice_mut(match self {
            Rows::Mapped(m) => &mut m[..],
            Rows::Heap(v) => v,
        })
    }
}

/// Lets regions that ask for huge pages have them, where the system's policy is `madvise` and
/// the process had them turned off (the allocator's `no_thp`).
fn allow_huge_pages() {
    #[cfg(target_os = "linux")]
    let policy = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    #[cfg(target_os = "linux")]
    if policy.is_ok_and(|p| p.contains("[madvise]"))
        && rustix::thread::transparent_huge_pages_are_disabled().unwrap_or(false)
        && let Err(e) = rustix::thread::disable_transparent_huge_pages(false)
    {
        tracing::debug!("cannot allow transparent huge pages for the rows: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::Rows;

    #[test]
    fn rows_start_zeroed_and_keep_what_is_written() {
        for len in [0, 1, 4096, 3 << 20] {
            let mut rows = Rows::zeroed(len);
            // below a huge page on the heap; above, mapped (both paths run here)
            assert_eq!(matches!(rows, Rows::Mapped(_)), len >= super::HUGE_PAGE);
            assert_eq!(rows.as_slice().len(), len);
            assert!(rows.as_slice().iter().all(|&b| b == 0));
            for (i, b) in rows.as_mut_slice().iter_mut().enumerate() {
                *b = (i % 251) as u8 as i8;
            }
            assert!(
                rows.as_slice()
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i % 251) as u8 as i8)
            );
        }
    }
}
