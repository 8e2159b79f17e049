//! The target side: coded bytes in, the image's bytes out, every frame bounded and checked.

use bytes::{Buf, Bytes, BytesMut};

use super::{KIND_RAW, KIND_ZEROS, KIND_ZSTD, MAX_FRAME};
use crate::pipeline::{Source, SourceError};

/// Zero runs are handed on as slices of this: no allocation, whatever the run's length.
static ZEROS: [u8; MAX_FRAME] = [0; MAX_FRAME];

/// Why a coded stream was refused. Offsets are in decoded bytes from the start of the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown frame kind {kind:#04x} at decoded byte {at}")]
    UnknownKind { kind: u8, at: u64 },
    #[error("empty {kind} frame at decoded byte {at}")]
    Empty { kind: &'static str, at: u64 },
    #[error("{kind} frame of {len} bytes at decoded byte {at} exceeds the {max}-byte frame bound")]
    Oversized {
        kind: &'static str,
        len: u64,
        max: usize,
        at: u64,
    },
    #[error("{kind} frame of {len} bytes at decoded byte {at} runs past the declared size ({remaining} bytes remain)")]
    PastEnd {
        kind: &'static str,
        len: u64,
        remaining: u64,
        at: u64,
    },
    #[error("zstd frame at decoded byte {at} has {coded} coded bytes for {decoded} decoded ones")]
    CodedLarger { coded: u32, decoded: u32, at: u64 },
    #[error(
        "zstd frame at decoded byte {at} decompresses to more than its declared {declared} bytes"
    )]
    Bomb { declared: u32, at: u64 },
    #[error("zstd frame at decoded byte {at} decompresses to {got} bytes, it declared {declared}")]
    Short { declared: u32, got: usize, at: u64 },
    #[error("zstd frame at decoded byte {at} does not decompress: {reason}")]
    Corrupt { reason: String, at: u64 },
}

/// What the decoder has ready.
#[derive(Debug)]
pub enum Piece {
    /// Decoded bytes (at most [`MAX_FRAME`]).
    Data(Bytes),
    /// A compressed frame: `Compressed::inflate` it (CPU work: off the async workers).
    Compressed(Compressed),
}

/// One complete zstd frame, bounded and not yet decompressed.
#[derive(Debug)]
pub struct Compressed {
    coded: Bytes,
    decoded: u32,
    at: u64,
}

impl Compressed {
    /// Decompresses into exactly the declared size, refusing anything that would exceed it.
    pub fn inflate(
        self,
        context: &mut zstd::bulk::Decompressor<'static>,
    ) -> Result<Bytes, DecodeError> {
        // One byte over the declared size is room enough to see a bomb: output is bounded by the
        // buffer's capacity, never by what the frame claims.
        let mut out = Vec::with_capacity(self.decoded as usize + 1);
        match context.decompress_to_buffer(&self.coded[..], &mut out) {
            Ok(_) if out.len() > self.decoded as usize => Err(DecodeError::Bomb {
                declared: self.decoded,
                at: self.at,
            }),
            Ok(_) if out.len() < self.decoded as usize => Err(DecodeError::Short {
                declared: self.decoded,
                got: out.len(),
                at: self.at,
            }),
            Ok(_) => Ok(Bytes::from(out)),
            // zstd refuses to write past the buffer ("Destination buffer is too small"): the
            // frame holds more than it declared.
            Err(error)
                if frame_too_big(&self.coded, self.decoded)
                    || error.to_string().contains("too small") =>
            {
                Err(DecodeError::Bomb {
                    declared: self.decoded,
                    at: self.at,
                })
            }
            Err(error) => Err(DecodeError::Corrupt {
                reason: error.to_string(),
                at: self.at,
            }),
        }
    }
}

/// Whether the zstd data declares (in its frame header) more content than `declared` bytes.
fn frame_too_big(coded: &[u8], declared: u32) -> bool {
    matches!(zstd::zstd_safe::get_frame_content_size(coded), Ok(Some(n)) if n > declared as u64)
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Between frames (a header may be partly in `carry`).
    Header,
    /// Inside a raw frame, this many payload bytes to go.
    Raw(u32),
    /// Collecting a zstd frame's payload into `carry`.
    Zstd { decoded: u32, coded: u32 },
}

/// The incremental decoder: [`Decoder::feed`] coded bytes in any split, take pieces with
/// [`Decoder::next_piece`]. Holds at most one header or one compressed payload.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    carry: BytesMut,
    input: Bytes,
    /// Zero bytes announced and not yet handed on.
    zeros: u64,
    /// Decoded bytes the frames read so far have announced.
    announced: u64,
    /// Decoded bytes this answer holds in all.
    size: u64,
}

impl Decoder {
    /// A decoder for an answer of `size` decoded bytes.
    pub fn new(size: u64) -> Self {
        Decoder {
            state: State::Header,
            carry: BytesMut::new(),
            input: Bytes::new(),
            zeros: 0,
            announced: 0,
            size,
        }
    }

    /// Adds coded bytes (call when [`Decoder::next_piece`] answered `None`).
    pub fn feed(&mut self, input: Bytes) {
        if self.input.is_empty() {
            self.input = input;
        } else {
            let mut joined = BytesMut::with_capacity(self.input.len() + input.len());
            joined.extend_from_slice(&self.input);
            joined.extend_from_slice(&input);
            self.input = joined.freeze();
        }
    }

    /// Whether the stream stands between frames with nothing pending: a clean place to end.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header)
            && self.carry.is_empty()
            && self.input.is_empty()
            && self.zeros == 0
    }

    /// The next piece, `Ok(None)` when more input is needed.
    pub fn next_piece(&mut self) -> Result<Option<Piece>, DecodeError> {
        loop {
            if self.zeros > 0 {
                let n = self.zeros.min(MAX_FRAME as u64) as usize;
                self.zeros -= n as u64;
                return Ok(Some(Piece::Data(Bytes::from_static(&ZEROS[..n]))));
            }
            match self.state {
                State::Header => {
                    if !self.header()? {
                        return Ok(None);
                    }
                }
                State::Raw(left) => {
                    if self.input.is_empty() {
                        return Ok(None);
                    }
                    let n = (left as usize).min(self.input.len());
                    let data = self.input.split_to(n);
                    let left = left - n as u32;
                    self.state = if left == 0 {
                        State::Header
                    } else {
                        State::Raw(left)
                    };
                    return Ok(Some(Piece::Data(data)));
                }
                State::Zstd { decoded, coded } => {
                    let coded = coded as usize;
                    let payload = if self.carry.is_empty() && self.input.len() >= coded {
                        self.input.split_to(coded)
                    } else {
                        let n = (coded - self.carry.len()).min(self.input.len());
                        self.carry.extend_from_slice(&self.input.split_to(n));
                        if self.carry.len() < coded {
                            return Ok(None);
                        }
                        self.carry.split().freeze()
                    };
                    self.state = State::Header;
                    return Ok(Some(Piece::Compressed(Compressed {
                        coded: payload,
                        decoded,
                        at: self.announced - decoded as u64,
                    })));
                }
            }
        }
    }

    /// Reads one frame header if the input completes it; checks it and enters its state.
    fn header(&mut self) -> Result<bool, DecodeError> {
        let at = self.announced;
        let first = match self.carry.first().or(self.input.first()) {
            Some(&kind) => kind,
            None => return Ok(false),
        };
        let len = match first {
            KIND_ZEROS => 1 + 8,
            KIND_RAW => 1 + 4,
            KIND_ZSTD => 1 + 4 + 4,
            kind => return Err(DecodeError::UnknownKind { kind, at }),
        };
        let n = (len - self.carry.len()).min(self.input.len());
        self.carry.extend_from_slice(&self.input.split_to(n));
        if self.carry.len() < len {
            return Ok(false);
        }
        let mut header = self.carry.split().freeze();
        header.advance(1);
        let remaining = self.size - self.announced;
        let (kind, length) = match first {
            KIND_ZEROS => ("zero-run", header.get_u64_le()),
            KIND_RAW => ("raw", u64::from(header.get_u32_le())),
            _ => ("zstd", u64::from(header.get_u32_le())),
        };
        if length == 0 {
            return Err(DecodeError::Empty { kind, at });
        }
        if first != KIND_ZEROS && length > MAX_FRAME as u64 {
            return Err(DecodeError::Oversized {
                kind,
                len: length,
                max: MAX_FRAME,
                at,
            });
        }
        if length > remaining {
            return Err(DecodeError::PastEnd {
                kind,
                len: length,
                remaining,
                at,
            });
        }
        // Bounded by MAX_FRAME above (zero runs aside), so these fit.
        let small = length as u32;
        self.state = match first {
            KIND_ZEROS => {
                self.zeros = length;
                State::Header
            }
            KIND_RAW => State::Raw(small),
            _ => {
                let coded = header.get_u32_le();
                if coded == 0 {
                    return Err(DecodeError::Empty {
                        kind: "zstd payload",
                        at,
                    });
                }
                if coded > small {
                    return Err(DecodeError::CodedLarger {
                        coded,
                        decoded: small,
                        at,
                    });
                }
                State::Zstd {
                    decoded: small,
                    coded,
                }
            }
        };
        self.announced += length;
        Ok(true)
    }
}

/// A coded body read as the image's bytes: any [`Source`] of coded frames, decoded.
pub struct Decoded<S> {
    inner: S,
    decoder: Decoder,
    context: Option<zstd::bulk::Decompressor<'static>>,
}

impl<S> Decoded<S> {
    /// Decodes `inner`, an answer of `size` decoded bytes.
    pub fn new(inner: S, size: u64) -> Self {
        Decoded {
            inner,
            decoder: Decoder::new(size),
            context: None,
        }
    }
}

impl<S: Source> Source for Decoded<S> {
    async fn next_frame(&mut self) -> Option<Result<Bytes, SourceError>> {
        loop {
            match self.decoder.next_piece() {
                Err(error) => return Some(Err(error.into())),
                Ok(Some(Piece::Data(data))) => return Some(Ok(data)),
                Ok(Some(Piece::Compressed(frame))) => return Some(self.inflate(frame).await),
                Ok(None) => match self.inner.next_frame().await? {
                    Ok(coded) => self.decoder.feed(coded),
                    Err(error) => return Some(Err(error)),
                },
            }
        }
    }
}

impl<S> Decoded<S> {
    /// Decompresses one frame on the blocking pool (a short job: at most MAX_FRAME bytes).
    async fn inflate(&mut self, frame: Compressed) -> Result<Bytes, SourceError> {
        let context = match self.context.take() {
            Some(context) => context,
            None => zstd::bulk::Decompressor::new().map_err(|e| SourceError::Broken {
                after: 0,
                reason: format!("no zstd decompression context: {e}"),
            })?,
        };
        let at = frame.at;
        let job = tokio::task::spawn_blocking(move || {
            let mut context = context;
            let result = frame.inflate(&mut context);
            (context, result)
        });
        match job.await {
            Ok((context, result)) => {
                self.context = Some(context);
                Ok(result?)
            }
            Err(error) => Err(DecodeError::Corrupt {
                reason: format!("the decompression job failed: {error}"),
                at,
            }
            .into()),
        }
    }
}
