//! The compact coding's decoder (`compact::Decoder`), fed what a source sidecar sends: any bytes,
//! in any split. Also the encoder's output decoded back.
#![no_main]

use bytes::{Bytes, BytesMut};
use glance_download_sidecar::compact::{Decoder, Encoder, Piece, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

/// Decodes `coded` as an answer of `size` bytes fed `split` bytes at a time; the bytes decoded
/// before the end or the first refusal, and whether it was refused.
fn decode(coded: &[u8], size: u64, split: usize) -> (Vec<u8>, bool) {
    let mut decoder = Decoder::new(size);
    let mut context = zstd::bulk::Decompressor::new().unwrap();
    let mut input = coded.chunks(split.max(1));
    let mut out = Vec::new();
    loop {
        match decoder.next_piece() {
            Err(_) => return (out, true),
            Ok(Some(Piece::Data(data))) => {
                assert!(!data.is_empty() && data.len() <= MAX_FRAME);
                out.extend_from_slice(&data);
            }
            Ok(Some(Piece::Compressed(frame))) => match frame.inflate(&mut context) {
                Ok(data) => {
                    assert!(!data.is_empty() && data.len() <= MAX_FRAME);
                    out.extend_from_slice(&data);
                }
                Err(_) => return (out, true),
            },
            Ok(None) => match input.next() {
                Some(part) => decoder.feed(Bytes::copy_from_slice(part)),
                None => return (out, false),
            },
        }
        // Never more than the declared size, whatever the frames claim.
        assert!(out.len() as u64 <= size);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    // Up to 16 MiB declared, so long zero runs stay quick to expand.
    let size = u64::from(u32::from_le_bytes(*head) % ((16 << 20) + 1));
    let split = usize::from(head[0]) + 1;
    let (whole, refused) = decode(rest, size, 1 << 20);
    let (pieces, refused_in_pieces) = decode(rest, size, split);
    // The split of the input changes nothing.
    assert_eq!(refused, refused_in_pieces);
    assert_eq!(whole, pieces);
    // What the encoder makes decodes to its input.
    let mut encoder = Encoder::new();
    let mut coded = BytesMut::new();
    encoder.encode(rest, &mut coded);
    encoder.finish(&mut coded);
    let (back, refused) = decode(&coded, rest.len() as u64, split);
    assert!(!refused);
    assert_eq!(back, rest);
});
