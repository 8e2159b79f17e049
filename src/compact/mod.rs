//! Compact transfer between sidecars: `GET /v2/images/{id}/file` answered in a content coding that
//! sends all-zero runs as their length and other data raw or zstd-compressed.
//!
//! Raw VM images for Ceph-backed clouds are mostly zeros, and the link between regions is the
//! scarce resource of a copy. When the source region's image endpoint is itself a sidecar, the
//! target sidecar asks for this coding and the source sidecar codes its Glance's answer; the target
//! decodes before hashing, so every byte is hashed and uploaded exactly as it would be uncoded.
//!
//! # Negotiation (per request, standard HTTP headers)
//!
//! - The target sends `Accept-Encoding: gds-compact-1` ([`CODING`]) on its source request
//!   (`compact_transfer = true`, the default).
//! - A source sidecar with `compact_transfer = true` that sees the token (q ≠ 0) on a
//!   `GET /v2/images/{id}/file` forwards the request to its Glance as always (the caller's token,
//!   its `Range`; Glance still authorises) but without `Accept-Encoding`, and codes a `200`/`206`
//!   answer that has no content coding of its own: `Content-Encoding: gds-compact-1`,
//!   `Vary: Accept-Encoding`, no `Content-Length` (chunked); every other header, `Content-Range`
//!   included, is Glance's.
//! - A plain Glance (or a sidecar with the switch off) ignores the header and answers plain bytes,
//!   which the target reads as before. A `Content-Encoding` the target does not know fails the
//!   read (it is never hashed as if it were the data).
//!
//! # `Range` is on the decoded bytes
//!
//! RFC 9110 §14 defines ranges on the selected representation, which for a coded answer would be
//! the coded bytes. Here a `Range` (and the `Content-Range` of a `206`) always counts bytes of the
//! image itself, decoded: the source sidecar forwards the `Range` to Glance and codes the part
//! Glance answers. This is what lets a dropped coded stream resume at the decoded offset it
//! reached, and parallel range segments work unchanged; coded offsets would be meaningless to a
//! new connection. Only peers that negotiated [`CODING`] ever see this deviation.
//!
//! # Frame format (`gds-compact-1`)
//!
//! The body is a sequence of frames, each a one-byte kind and little-endian lengths:
//!
//! | kind | header after the kind byte | payload | decodes to |
//! | --- | --- | --- | --- |
//! | `0x00` zeros | `u64` run length `n` (≥ 1) | none | `n` zero bytes |
//! | `0x01` raw | `u32` length `n` (1 ..= [`MAX_FRAME`]) | `n` bytes | those bytes |
//! | `0x02` zstd | `u32` decoded length `d` (1 ..= [`MAX_FRAME`]), `u32` coded length `c` (1 ..= `d`) | `c` bytes of zstd | exactly `d` bytes |
//!
//! There is no stream header and no end marker: the version is in the token, and the stream
//! ends with the HTTP body; the decoded length must be the requested range's, which the reader
//! knows (the image's size and its `Range`). A zero run has no size bound of its own (a 10 GiB
//! hole is 9 bytes) but may not run past the declared size; the target expands it into frames of
//! at most [`MAX_FRAME`] bytes sliced from one static zero buffer (no allocation).
//!
//! Why this shape: zero runs dominate sparse raw images and cost nothing to find; zstd at a fast
//! level gives 3–10× on text-like data at hundreds of MB/s per core; raw frames keep
//! incompressible data (qcow2 of random or already-compressed data) at memory speed. The decoder
//! bounds every frame (a compressed frame may not be larger than its decoded size, nor decode to
//! more than it declares), so a hostile or broken peer costs at most one frame of memory and
//! fails the import with a precise [`DecodeError`].
//!
//! # Memory and CPU
//!
//! The encoder holds one input frame ([`ENCODE_FRAME`] bytes) and its coding; the decoder holds
//! at most one coded frame and one decoded one, and hands its output to the pipeline's bounded
//! channels (backpressure unchanged). Compression and decompression run in `spawn_blocking`, one
//! short job per frame (≤ [`MAX_FRAME`] bytes, a millisecond or two), never on the async
//! workers; zero runs and raw frames are only sliced.
//!
//! [`CODING`]: crate::compact::CODING
//! [`MAX_FRAME`]: crate::compact::MAX_FRAME
//! [`DecodeError`]: crate::compact::DecodeError
//! [`ENCODE_FRAME`]: crate::compact::ENCODE_FRAME

mod decode;
mod encode;

pub use decode::{DecodeError, Decoded, Decoder, Piece};
pub use encode::{coded_response, Encoder};

use http::header::{self, HeaderMap};
use http::Method;

/// The content-coding token of this format, version 1.
pub const CODING: &str = "gds-compact-1";

/// Largest decoded size of one frame (and the coded size of a raw or zstd payload).
pub const MAX_FRAME: usize = 1024 * 1024;

/// Bytes the encoder takes per frame: small enough to stream, large enough for zstd to find
/// repeats.
pub const ENCODE_FRAME: usize = 256 * 1024;

/// Zero detection granularity: a sector-sized block that is all zeros joins a zero run.
pub const ZERO_BLOCK: usize = 4096;

/// The zstd level: the fastest regular level.
pub const ZSTD_LEVEL: i32 = 1;

/// Frame kinds.
pub(crate) const KIND_ZEROS: u8 = 0x00;
pub(crate) const KIND_RAW: u8 = 0x01;
pub(crate) const KIND_ZSTD: u8 = 0x02;

/// Whether `headers` accept [`CODING`]: listed in `Accept-Encoding` with a q-value other than 0.
pub fn accepts(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case(CODING) {
                return false;
            }
            !parts.any(|param| {
                let param = param.trim();
                let Some((key, value)) = param.split_once('=') else {
                    return false;
                };
                key.trim().eq_ignore_ascii_case("q")
                    && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        })
}

/// Whether a request is an image data download the source side may code:
/// `GET /v2/images/{id}/file` that accepts [`CODING`].
pub fn wanted(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    method == Method::GET
        && matches!(segments.as_slice(), ["v2", "images", id, "file"] if !id.is_empty())
        && accepts(headers)
}

#[cfg(test)]
mod tests;
