//! The source side: a Glance answer coded frame by frame.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::{
    CODING, ENCODE_FRAME, KIND_RAW, KIND_ZEROS, KIND_ZSTD, MAX_FRAME, ZERO_BLOCK, ZSTD_LEVEL,
};
use crate::http::{boxed, BoxBody, BoxError};

/// Bytes of a frame's data compressed first to see whether compressing it pays.
const SAMPLE: usize = 4096;

/// Longest zero run held before it is sent (a 9-byte frame).
const ZERO_RUN_FLUSH: u64 = 64 << 20;

/// Coded frames buffered between the encoding task and the connection.
const CODED_FRAMES: usize = 2;

/// Compressing pays when it saves at least 1/PAYS_DIVISOR of the bytes.
const PAYS_DIVISOR: usize = 8;

/// Codes data into frames. Zero runs are carried across calls, so a hole spanning many input
/// frames is one zero-run frame.
pub struct Encoder {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    zeros: u64,
    scratch: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder; without a zstd context (memory refused) it sends data raw.
    pub fn new() -> Self {
        Encoder {
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
            zeros: 0,
            scratch: Vec::new(),
        }
    }

    /// Codes `data` (any length) into `out`; a trailing zero run stays pending.
    pub fn encode(&mut self, data: &[u8], out: &mut BytesMut) {
        for segment in data.chunks(ENCODE_FRAME.min(MAX_FRAME)) {
            self.segment(segment, out);
        }
    }

    /// Flushes the pending zero run: call at the end of the data.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.zeros > 0 {
            out.put_u8(KIND_ZEROS);
            out.put_u64_le(self.zeros);
            self.zeros = 0;
        }
    }

    fn segment(&mut self, segment: &[u8], out: &mut BytesMut) {
        let mut data_start = 0;
        let mut at = 0;
        for block in segment.chunks(ZERO_BLOCK) {
            if is_zero(block) {
                if data_start < at {
                    self.finish(out);
                    self.data(&segment[data_start..at], out);
                }
                self.zeros += block.len() as u64;
                data_start = at + block.len();
                // A long hole is announced in parts, so the reader hears from the source while
                // it is read.
                if self.zeros >= ZERO_RUN_FLUSH {
                    self.finish(out);
                }
            }
            at += block.len();
        }
        if data_start < segment.len() {
            self.finish(out);
            self.data(&segment[data_start..], out);
        }
    }

    /// One raw or zstd frame for `data` (1 ..= MAX_FRAME bytes): zstd only when it saves at least
    /// an eighth, judged first on a sample so incompressible data costs one small attempt.
    fn data(&mut self, data: &[u8], out: &mut BytesMut) {
        if let Some(coded) = self.compress(data) {
            out.put_u8(KIND_ZSTD);
            out.put_u32_le(data.len() as u32);
            out.put_u32_le(coded as u32);
            out.extend_from_slice(&self.scratch[..coded]);
        } else {
            out.put_u8(KIND_RAW);
            out.put_u32_le(data.len() as u32);
            out.extend_from_slice(data);
        }
    }

    /// Compresses `data` into `scratch` if that pays; returns the coded length.
    fn compress(&mut self, data: &[u8]) -> Option<usize> {
        let compressor = self.compressor.as_mut()?;
        if data.len() > 2 * SAMPLE {
            let middle = data.len() / 2 - SAMPLE / 2;
            let sample = &data[middle..middle + SAMPLE];
            compress_within(compressor, sample, &mut self.scratch, pays(SAMPLE))?;
        }
        compress_within(compressor, data, &mut self.scratch, pays(data.len()))
    }
}

/// The most bytes [`Encoder::encode`] and [`Encoder::finish`] write for `len` input bytes: the
/// data raw plus a zero-run and a data frame header for every block, so the output buffer of
/// incompressible data is allocated once, never regrown (and copied) while it is filled.
fn coded_bound(len: usize) -> usize {
    len + (len / ZERO_BLOCK + len / ENCODE_FRAME + 3) * (9 + 9)
}

/// The largest coding of `len` bytes worth sending compressed.
fn pays(len: usize) -> usize {
    len - len / PAYS_DIVISOR
}

/// Compresses `data` into `out` (cleared) if the coding is at most `budget` bytes.
fn compress_within(
    compressor: &mut zstd::bulk::Compressor<'static>,
    data: &[u8],
    out: &mut Vec<u8>,
    budget: usize,
) -> Option<usize> {
    out.clear();
    out.reserve(budget);
    // `compress_to_buffer` writes into the spare capacity, which may exceed `budget`.
    let n = compressor.compress_to_buffer(data, out).ok()?;
    (n > 0 && n <= budget).then_some(n)
}

/// Whether every byte of `block` is zero (word at a time; stops at the first non-zero word).
fn is_zero(block: &[u8]) -> bool {
    let mut words = block.chunks_exact(16);
    let all_words = words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0);
    all_words && words.remainder().iter().all(|&b| b == 0)
}

/// The coded form of a Glance answer to `GET /v2/images/{id}/file`, when it is a `200`/`206`
/// without a content coding of its own (without `Content-Length`, `Content-MD5` and `ETag`, which
/// describe the decoded bytes); otherwise the answer unchanged.
///
/// The body is coded by a task that reads the answer one [`ENCODE_FRAME`] at a time and codes it
/// on the blocking pool; a failed upstream body fails the coded body (the connection is cut
/// before the last chunk, so the reader resumes).
pub fn coded_response(response: Response<BoxBody>) -> Response<BoxBody> {
    let status = response.status();
    let identity = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if !matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) || !identity {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    // Glance's `Content-MD5` (the image checksum) and `ETag` describe the decoded bytes; on a
    // coded answer they would name a body that is not the one sent.
    parts.headers.remove("content-md5");
    parts.headers.remove(header::ETAG);
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(CODING));
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let (tx, rx) = mpsc::channel(CODED_FRAMES);
    tokio::spawn(code(body, tx));
    Response::from_parts(parts, boxed(ChannelBody { rx }))
}

/// Reads `body`, codes it, sends the frames; stops when the reader is gone.
async fn code(mut body: BoxBody, tx: mpsc::Sender<Result<Bytes, BoxError>>) {
    let mut encoder = Encoder::new();
    let mut input = BytesMut::with_capacity(ENCODE_FRAME);
    loop {
        let ended = loop {
            match body.frame().await {
                None => break true,
                Some(Err(error)) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        input.extend_from_slice(&data);
                        if input.len() >= ENCODE_FRAME {
                            break false;
                        }
                    }
                }
            }
        };
        // Whole frames only until the end, so what is held stays under a frame plus one read.
        let whole = if ended {
            input.len()
        } else {
            input.len() / ENCODE_FRAME * ENCODE_FRAME
        };
        let take = input.split_to(whole).freeze();
        // Zero detection and zstd cost up to a couple of milliseconds per frame: off the async
        // workers, as one short job per frame.
        let job = tokio::task::spawn_blocking(move || {
            let mut out = BytesMut::with_capacity(coded_bound(take.len()));
            encoder.encode(&take, &mut out);
            if ended {
                encoder.finish(&mut out);
            }
            (encoder, out)
        });
        let out = match job.await {
            Ok((back, out)) => {
                encoder = back;
                out
            }
            Err(error) => {
                let _ = tx.send(Err(format!("coding failed: {error}").into())).await;
                return;
            }
        };
        if !out.is_empty() && tx.send(Ok(out.freeze())).await.is_err() {
            return;
        }
        if ended {
            return;
        }
    }
}

/// A body fed by the coding task.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }
}
