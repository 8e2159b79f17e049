//! The allocator's hold on freed buffers.
//!
//! glibc's `malloc` serves blocks of at least its mmap threshold (128 KiB at start) with their own
//! mappings, returned to the kernel when freed, but it raises that threshold to the size of each
//! mapped block freed (up to 32 MiB). From then on an import's large buffers (hyper's receive
//! buffers of up to ~400 KiB, the frames waiting in the reorder window) come from the heap, and
//! once freed they stay in the process: over the emulated 80 ms link an 8-stream copy peaked at
//! ~60 MiB RSS where the bytes it held were bounded at ~30 MiB, and at ~45 MiB with the threshold
//! kept at 128 KiB (BENCHMARKS §8.1). Fixing the threshold keeps the memory a copy uses close to
//! what its bounds say, for the price of a mapping per large block.

/// Blocks of at least this many bytes get mappings of their own: glibc's initial default, kept.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Keeps large blocks in mappings of their own, so they go back to the kernel when freed. Call
/// once, first thing in `main`: before any other thread allocates.
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only sets a tuning parameter of glibc's allocator; it takes no pointer and
    // runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
