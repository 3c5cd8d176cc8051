//! `.quarry-acl.toml` files: an accepted file gives a non-empty, normalised list of principals.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        // The walker reads the file as UTF-8; anything else is an error before parsing.
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(acl) = quarry_index::ingest::parse_acl_file(text) {
            assert!(!acl.is_empty());
            assert_eq!(
                quarry_core::acl::normalize_acl(&acl).ok().as_ref(),
                Some(&acl)
            );
        }
    });
}
