//! Size arguments (`--size 256MiB`) and `os_hash_algo` names.
#![no_main]

use glance_download_sidecar::tools::demo::parse_size;
use glance_download_sidecar::hash::{HashAlgo, UnknownAlgo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = parse_size(text) {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            assert_eq!(text.parse::<u64>().ok(), Some(n));
        }
    }
    match text.parse::<HashAlgo>() {
        Ok(algo) => {
            assert_eq!(algo.name(), text);
            assert_eq!(algo.to_string(), text);
        }
        Err(UnknownAlgo(shown)) => assert!(shown.chars().count() <= 64),
    }
});
