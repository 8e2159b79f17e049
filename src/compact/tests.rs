use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING};

use super::*;

fn encode(data: &[u8], pieces: usize) -> Bytes {
    let mut encoder = Encoder::new();
    let mut out = BytesMut::new();
    let step = data.len().div_ceil(pieces.max(1)).max(1);
    for part in data.chunks(step) {
        encoder.encode(part, &mut out);
    }
    encoder.finish(&mut out);
    out.freeze()
}

/// Decodes `coded` fed `split` bytes at a time; the decoded bytes or the first refusal.
fn decode(coded: &[u8], size: u64, split: usize) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = Decoder::new(size);
    let mut context = zstd::bulk::Decompressor::new().unwrap();
    let mut out = Vec::new();
    let mut input = coded.chunks(split.max(1));
    loop {
        match decoder.next_piece()? {
            Some(Piece::Data(data)) => {
                assert!(!data.is_empty() && data.len() <= MAX_FRAME);
                out.extend_from_slice(&data)
            }
            Some(Piece::Compressed(frame)) => out.extend_from_slice(&frame.inflate(&mut context)?),
            None => match input.next() {
                Some(part) => decoder.feed(Bytes::copy_from_slice(part)),
                None => {
                    assert!(decoder.at_boundary(), "ended inside a frame");
                    return Ok(out);
                }
            },
        }
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn text(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(3);
    let words = [
        "glance", "image", "region", "sidecar", "the", "of", "zero", "data\n",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(words[rng.usize(..words.len())].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// 10 % data in 64 KiB islands, the rest zeros, with an odd length.
fn sparse(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, island) in out.chunks_mut(640 * 1024).enumerate() {
        let n = island.len().min(64 * 1024);
        island[..n].copy_from_slice(&random(n, i as u64));
    }
    out
}

fn round_trip(data: &[u8]) -> Bytes {
    for pieces in [1, 3, 17] {
        let coded = encode(data, pieces);
        for split in [1 << 20, 65_536, 4093] {
            assert_eq!(
                decode(&coded, data.len() as u64, split).unwrap(),
                data,
                "pieces {pieces} split {split}"
            );
        }
    }
    encode(data, 1)
}

#[test]
fn zeros_are_sent_as_their_length() {
    let coded = round_trip(&vec![0u8; 5 << 20]);
    assert_eq!(coded.len(), 9, "one zero-run frame");
    assert_eq!(coded[0], KIND_ZEROS);
}

#[test]
fn long_holes_are_announced_in_parts() {
    let data = vec![0u8; 130 << 20];
    let coded = encode(&data, 1);
    // 64 + 64 + 2 MiB: three frames, nothing held back for long.
    assert_eq!(coded.len(), 27);
    assert_eq!(
        decode(&coded, data.len() as u64, 1 << 20).unwrap().len(),
        data.len()
    );
}

#[test]
fn random_data_goes_raw_with_only_frame_headers() {
    let data = random(3 << 20, 1);
    let coded = round_trip(&data);
    let frames = data.len().div_ceil(ENCODE_FRAME);
    assert_eq!(coded.len(), data.len() + frames * 5, "raw frames only");
}

#[test]
fn text_is_compressed() {
    let data = text(2 << 20);
    let coded = round_trip(&data);
    assert!(
        coded.len() < data.len() / 2,
        "{} of {}",
        coded.len(),
        data.len()
    );
}

#[test]
fn sparse_data_keeps_only_its_islands() {
    let data = sparse((6 << 20) + 12345);
    let coded = round_trip(&data);
    let islands = data.len().div_ceil(640 * 1024) * 64 * 1024;
    assert!(
        coded.len() < islands + 4096,
        "{} for {islands} data bytes",
        coded.len()
    );
}

#[test]
fn mixed_and_tiny_inputs_round_trip() {
    round_trip(b"");
    round_trip(b"x");
    round_trip(&[0u8; 17]);
    let mut data = text(300_000);
    data.extend_from_slice(&[0u8; 10_000]);
    data.extend_from_slice(&random(5_000, 9));
    data.extend_from_slice(&[0u8; 4097]);
    data.push(1);
    round_trip(&data);
}

fn frame(kind: u8, header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out
}

fn zstd_frame(decoded: u32, payload: &[u8]) -> Vec<u8> {
    let mut header = BytesMut::new();
    header.put_u32_le(decoded);
    header.put_u32_le(payload.len() as u32);
    frame(KIND_ZSTD, &header, payload)
}

#[test]
fn unknown_kind_is_refused() {
    let mut coded = frame(KIND_RAW, &3u32.to_le_bytes(), b"abc");
    coded.push(0x07);
    assert_eq!(
        decode(&coded, 100, 1),
        Err(DecodeError::UnknownKind { kind: 7, at: 3 })
    );
}

#[test]
fn empty_frames_are_refused() {
    let raw = frame(KIND_RAW, &0u32.to_le_bytes(), b"");
    assert!(matches!(
        decode(&raw, 10, 4),
        Err(DecodeError::Empty { kind: "raw", at: 0 })
    ));
    let zeros = frame(KIND_ZEROS, &0u64.to_le_bytes(), b"");
    assert!(matches!(
        decode(&zeros, 10, 4),
        Err(DecodeError::Empty { .. })
    ));
    let payload = zstd_frame(10, b"");
    assert!(matches!(
        decode(&payload, 10, 4),
        Err(DecodeError::Empty { .. })
    ));
}

#[test]
fn oversized_frames_are_refused_before_their_payload() {
    let len = (MAX_FRAME + 1) as u32;
    // Only the header is sent: the refusal does not wait for (or buffer) the payload.
    let raw = frame(KIND_RAW, &len.to_le_bytes(), b"");
    assert!(matches!(
        decode(&raw, 1 << 30, 1),
        Err(DecodeError::Oversized { kind: "raw", .. })
    ));
    let mut header = BytesMut::new();
    header.put_u32_le(len);
    header.put_u32_le(100);
    let zstd = frame(KIND_ZSTD, &header, b"");
    assert!(matches!(
        decode(&zstd, 1 << 30, 1),
        Err(DecodeError::Oversized { kind: "zstd", .. })
    ));
}

#[test]
fn runs_past_the_declared_size_are_refused() {
    let mut coded = frame(KIND_ZEROS, &1000u64.to_le_bytes(), b"");
    coded.extend(frame(KIND_ZEROS, &u64::MAX.to_le_bytes(), b""));
    assert_eq!(
        decode(&coded, 5000, 3),
        Err(DecodeError::PastEnd {
            kind: "zero-run",
            len: u64::MAX,
            remaining: 4000,
            at: 1000
        })
    );
    let raw = frame(KIND_RAW, &11u32.to_le_bytes(), b"hello world");
    assert!(matches!(
        decode(&raw, 10, 100),
        Err(DecodeError::PastEnd { kind: "raw", .. })
    ));
}

#[test]
fn a_compressed_frame_larger_than_its_data_is_refused() {
    let coded = zstd_frame(4, b"12345");
    assert_eq!(
        decode(&coded, 10, 100),
        Err(DecodeError::CodedLarger {
            coded: 5,
            decoded: 4,
            at: 0
        })
    );
}

#[test]
fn a_decompression_bomb_is_refused() {
    // 1 MiB of zeros compresses to a few dozen bytes; the frame claims 1000 decoded bytes.
    let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap();
    let coded = zstd_frame(1000, &bomb);
    assert_eq!(
        decode(&coded, 1 << 30, 7),
        Err(DecodeError::Bomb {
            declared: 1000,
            at: 0
        })
    );
    // The same without a content size in the zstd header: caught by the bounded buffer.
    let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
    compressor
        .set_parameter(zstd::stream::raw::CParameter::ContentSizeFlag(false))
        .unwrap();
    let hidden = compressor.compress(&vec![0u8; 1 << 20]).unwrap();
    let coded = zstd_frame(1000, &hidden);
    assert!(matches!(
        decode(&coded, 1 << 30, 7),
        Err(DecodeError::Bomb { .. })
    ));
}

#[test]
fn a_frame_that_decodes_short_or_not_at_all_is_refused() {
    let small = zstd::bulk::compress(&vec![7u8; 500], 1).unwrap();
    assert!(small.len() < 400);
    let coded = zstd_frame(400, &small);
    assert!(matches!(
        decode(&coded, 1 << 20, 64),
        Err(DecodeError::Bomb { .. })
    ));
    let coded = zstd_frame(1000, &small);
    assert_eq!(
        decode(&coded, 1 << 20, 64),
        Err(DecodeError::Short {
            declared: 1000,
            got: 500,
            at: 0
        })
    );
    let coded = zstd_frame(1000, b"not zstd at all");
    assert!(matches!(
        decode(&coded, 1 << 20, 64),
        Err(DecodeError::Corrupt { .. })
    ));
}

#[test]
fn refusals_read_precisely() {
    let error = DecodeError::PastEnd {
        kind: "zero-run",
        len: 10,
        remaining: 4,
        at: 6,
    };
    assert_eq!(
        error.to_string(),
        "zero-run frame of 10 bytes at decoded byte 6 runs past the declared size (4 bytes remain)"
    );
}

fn accept(value: &str) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
    accepts(&headers)
}

#[test]
fn the_coding_is_negotiated_with_accept_encoding() {
    assert!(accept("gds-compact-1"));
    assert!(accept("gzip, GDS-Compact-1;q=0.5"));
    assert!(!accept("gzip, deflate"));
    assert!(!accept("gds-compact-1;q=0"));
    assert!(!accept("gds-compact-1 ; q=0.000"));
    assert!(!accept("gds-compact-2"));
    assert!(!accepts(&HeaderMap::new()));
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(CODING));
    let get = http::Method::GET;
    assert!(wanted(&get, "/v2/images/abc/file", &headers));
    assert!(!wanted(&http::Method::PUT, "/v2/images/abc/file", &headers));
    assert!(!wanted(&get, "/v2/images/abc", &headers));
    assert!(!wanted(&get, "/v2/images/abc/file", &HeaderMap::new()));
}

/// A source of fixed coded frames, for the async adapter.
struct Frames(std::collections::VecDeque<Bytes>);

impl crate::pipeline::Source for Frames {
    async fn next_frame(&mut self) -> Option<Result<Bytes, crate::pipeline::SourceError>> {
        self.0.pop_front().map(Ok)
    }
}

#[tokio::test]
async fn the_decoded_source_yields_the_image_and_refuses_bad_frames() {
    use crate::pipeline::{Source, SourceError};
    let mut data = text(700_000);
    data.extend_from_slice(&vec![0u8; 3 << 20]);
    data.extend_from_slice(&random(100_000, 4));
    let coded = encode(&data, 5);
    let frames = coded.chunks(10_000).map(Bytes::copy_from_slice).collect();
    let mut source = Decoded::new(Frames(frames), data.len() as u64);
    let mut out = Vec::new();
    while let Some(frame) = source.next_frame().await {
        out.extend_from_slice(&frame.unwrap());
    }
    assert_eq!(out, data);

    let bad = Bytes::from(frame(KIND_ZEROS, &11u64.to_le_bytes(), b""));
    let mut source = Decoded::new(Frames([bad].into()), 10);
    let error = source.next_frame().await.unwrap().unwrap_err();
    assert!(matches!(
        error,
        SourceError::Compact(DecodeError::PastEnd { .. })
    ));
    assert!(error
        .to_string()
        .starts_with("the source's compact coding is invalid: "));
}
