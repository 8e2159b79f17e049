use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;

use super::*;

/// A scripted source body: frames (or an error) in order, with a `Pending` before each one to
/// exercise wake-ups, and a count of frames taken so backpressure can be observed.
struct Scripted {
    frames: VecDeque<Result<Bytes, std::io::Error>>,
    pending_next: bool,
    taken: Arc<AtomicU64>,
}

impl Scripted {
    fn new(frames: Vec<Result<Bytes, std::io::Error>>) -> (Self, Arc<AtomicU64>) {
        let taken = Arc::new(AtomicU64::new(0));
        let body = Scripted {
            frames: frames.into(),
            pending_next: true,
            taken: taken.clone(),
        };
        (body, taken)
    }
}

impl http_body::Body for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.pending_next {
            self.pending_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pending_next = true;
        match self.frames.pop_front() {
            None => Poll::Ready(None),
            Some(frame) => {
                self.taken.fetch_add(1, Ordering::SeqCst);
                Poll::Ready(Some(frame.map(Frame::data)))
            }
        }
    }
}

fn data(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn expected_for(bytes: &[u8], algo: HashAlgo) -> Expected {
    Expected {
        size: bytes.len() as u64,
        checksum: Some(HashAlgo::Md5.hex_digest(bytes)),
        os_hash: Some((algo, algo.hex_digest(bytes))),
    }
}

fn frames_of(bytes: &Bytes, frame: usize) -> Vec<Result<Bytes, std::io::Error>> {
    bytes
        .chunks(frame)
        .map(|c| Ok(bytes.slice_ref(c)))
        .collect()
}

/// Two frames of the budget's least charge ([`MIN_FRAME_CHARGE`]): the 1000-byte frames of the
/// tests below fit two at a time.
const LIMITS: Limits = Limits {
    chunk_size: 1000,
    buffer_bytes: 2 * MIN_FRAME_CHARGE,
};

fn src(body: Scripted) -> BodySource<Scripted> {
    BodySource::new(body, std::time::Duration::from_secs(5))
}

/// Drives the pipeline and a sink that reads everything; returns what the sink got and whether
/// its body ended cleanly, and the pump's result.
async fn drive(
    source: Scripted,
    expected: Expected,
) -> (Vec<u8>, bool, Result<Verified, PipelineError>) {
    let progress = Arc::new(AtomicU64::new(0));
    let (mut body, pump) = start(src(source), expected, LIMITS, progress);
    let sink = async move {
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => got.extend_from_slice(&frame.into_data().unwrap()),
                Err(_) => return (got, false),
            }
        }
        (got, true)
    };
    let ((got, clean), result) = tokio::join!(sink, pump);
    (got, clean, result)
}

#[tokio::test]
async fn verified_data_reaches_the_sink_whole() {
    for algo in crate::hash::ALL {
        let bytes = data(10_001);
        let (source, _) = Scripted::new(frames_of(&bytes, 3000));
        let (got, clean, result) = drive(source, expected_for(&bytes, algo)).await;
        let verified = result.unwrap();
        assert!(clean);
        assert_eq!(got, bytes.to_vec());
        assert_eq!(verified.os_hash_algo, algo);
        assert_eq!(verified.os_hash_value, algo.hex_digest(&bytes));
    }
}

#[tokio::test]
async fn empty_and_one_byte_images() {
    for len in [0, 1] {
        let bytes = data(len);
        let (source, _) = Scripted::new(frames_of(&bytes, 1));
        let (got, clean, result) = drive(source, expected_for(&bytes, HashAlgo::Sha512)).await;
        assert!(result.is_ok() && clean);
        assert_eq!(got.len(), len);
    }
}

#[tokio::test]
async fn corrupted_data_never_delivers_its_last_bytes() {
    let bytes = data(5000);
    let mut corrupt = bytes.to_vec();
    corrupt[1234] ^= 1;
    let corrupt = Bytes::from(corrupt);
    let (source, _) = Scripted::new(frames_of(&corrupt, 1000));
    let (got, clean, result) = drive(source, expected_for(&bytes, HashAlgo::Sha256)).await;
    assert!(matches!(
        result,
        Err(PipelineError::ChecksumMismatch { .. })
    ));
    assert!(!clean, "the sink body must fail, not end");
    assert!(got.len() < bytes.len(), "the last frame is held back");
}

#[tokio::test]
async fn wrong_os_hash_is_refused() {
    let bytes = data(2048);
    let mut expected = expected_for(&bytes, HashAlgo::Sha512);
    expected.os_hash = Some((HashAlgo::Sha512, "00".repeat(64)));
    let (source, _) = Scripted::new(frames_of(&bytes, 512));
    let (_, clean, result) = drive(source, expected).await;
    assert!(matches!(result, Err(PipelineError::HashMismatch { .. })));
    assert!(!clean);
}

#[tokio::test]
async fn short_long_and_broken_sources_fail() {
    let bytes = data(4000);
    let expected = expected_for(&bytes, HashAlgo::Sha512);

    let (short, _) = Scripted::new(frames_of(&bytes.slice(..3000), 1000));
    let (_, clean, result) = drive(short, expected.clone()).await;
    assert!(matches!(result, Err(PipelineError::TooShort { got: 3000, .. })) && !clean);

    let mut longer = bytes.to_vec();
    longer.push(0);
    let (long, _) = Scripted::new(frames_of(&Bytes::from(longer), 1000));
    let (_, clean, result) = drive(long, expected.clone()).await;
    assert!(matches!(result, Err(PipelineError::TooLong { .. })) && !clean);

    let mut frames = frames_of(&bytes, 1000);
    frames.truncate(2);
    frames.push(Err(std::io::Error::other("connection reset")));
    let (broken, _) = Scripted::new(frames);
    let (_, clean, result) = drive(broken, expected).await;
    assert!(
        matches!(
            result,
            Err(PipelineError::Source(SourceError::Broken {
                after: 2000,
                ..
            }))
        ) && !clean
    );
}

#[tokio::test]
async fn a_stalled_sink_stops_the_source() {
    let bytes = data(100_000);
    let (source, taken) = Scripted::new(frames_of(&bytes, 1000));
    let progress = Arc::new(AtomicU64::new(0));
    let (body, pump) = start(
        src(source),
        expected_for(&bytes, HashAlgo::Sha512),
        LIMITS,
        progress,
    );
    let pump = tokio::spawn(pump);
    // Nobody reads `body`: the pump may fill the byte budget (two frames: the held one and one
    // in the sink's channel) and take one more frame from the source, then it must wait.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let bound = (LIMITS.buffer_bytes / MIN_FRAME_CHARGE + 1) as u64;
    assert!(
        taken.load(Ordering::SeqCst) <= bound,
        "took {} frames with a stalled sink",
        taken.load(Ordering::SeqCst)
    );
    drop(body);
    let result = pump.await.unwrap();
    assert!(matches!(result, Err(PipelineError::SinkGone)));
}

/// Waits (a hang guard, not a timing check) until the source has given at least `bytes`, then
/// lets the pump run on a little so that it would overshoot if it could.
async fn taken_reaches(taken: &AtomicU64, frame: usize, bytes: usize) -> usize {
    let reached = async {
        while (taken.load(Ordering::SeqCst) as usize) * frame < bytes {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), reached)
        .await
        .expect("the pump stopped below its byte budget");
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    taken.load(Ordering::SeqCst) as usize * frame
}

/// The buffer is bounded in bytes whatever size the source's frames are: with a stalled store the
/// pump fills the budget (small frames by the hundred, large ones a few) and takes at most one
/// frame more; each frame the store then takes lets exactly that many bytes more in.
#[tokio::test]
async fn a_slow_store_holds_the_pipeline_to_its_byte_budget() {
    let limits = Limits {
        chunk_size: 1 << 20,
        buffer_bytes: 2 << 20,
    };
    for frame in [16 << 10, 256 << 10, 1 << 20] {
        let bytes = data(8 << 20);
        let (source, taken) = Scripted::new(frames_of(&bytes, frame));
        let expected = expected_for(&bytes, HashAlgo::Sha512);
        let (mut body, pump) = start(src(source), expected, limits, Arc::default());
        let pump = tokio::spawn(pump);
        let budget = limits.buffer_bytes;
        let held = taken_reaches(&taken, frame, budget).await;
        assert!(
            held <= budget + frame,
            "{held} bytes with {frame}-byte frames"
        );
        for _ in 0..3 {
            body.frame().await.unwrap().unwrap();
        }
        let held = taken_reaches(&taken, frame, budget + 3 * frame).await;
        assert!(held <= budget + 4 * frame, "{held} bytes after 3 taken");
        drop(body);
        assert!(matches!(pump.await.unwrap(), Err(PipelineError::SinkGone)));
    }
}

#[tokio::test]
async fn large_frames_are_split_to_chunk_size() {
    let bytes = data(4500);
    let (source, _) = Scripted::new(vec![Ok(bytes.clone())]);
    let progress = Arc::new(AtomicU64::new(0));
    let (mut body, pump) = start(
        src(source),
        expected_for(&bytes, HashAlgo::Sha512),
        LIMITS,
        progress,
    );
    let sink = async move {
        let mut sizes = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            sizes.push(frame.into_data().unwrap().len());
        }
        sizes
    };
    let (sizes, result) = tokio::join!(sink, pump);
    result.unwrap();
    assert_eq!(sizes, vec![1000, 1000, 1000, 1000, 500]);
}

// === transfer ===

fn verified() -> Verified {
    Verified {
        size: 3,
        checksum: "c".into(),
        os_hash_algo: HashAlgo::Sha512,
        os_hash_value: "h".into(),
    }
}

#[tokio::test]
async fn a_transfer_is_verified_only_when_pump_and_store_both_succeed() {
    let ok = transfer(3, async { Ok(verified()) }, async { Ok::<(), &str>(()) }).await;
    assert_eq!(ok.ok(), Some(verified()));
    let refused = transfer(3, async { Ok(verified()) }, async {
        Err::<(), _>("refused")
    })
    .await;
    assert!(matches!(refused, Err(TransferError::Store("refused"))));
}

#[tokio::test]
async fn the_data_verdict_wins_over_the_store_error_it_caused() {
    let short = transfer(
        3,
        async {
            Err(PipelineError::TooShort {
                expected: 3,
                got: 1,
            })
        },
        async { Err::<(), _>("upload cut") },
    )
    .await;
    assert!(matches!(
        short,
        Err(TransferError::Pipeline(PipelineError::TooShort { .. }))
    ));
}

#[tokio::test]
async fn a_store_that_stopped_reading_says_why() {
    let gone = transfer(3, async { Err(PipelineError::SinkGone) }, async {
        Err::<(), _>("store full")
    })
    .await;
    assert!(matches!(gone, Err(TransferError::Store("store full"))));
}

#[tokio::test]
async fn an_empty_image_is_verified_before_its_upload_starts() {
    let started = Arc::new(AtomicU64::new(0));
    let upload = {
        let started = started.clone();
        async move {
            started.store(1, Ordering::SeqCst);
            Ok::<(), &str>(())
        }
    };
    let bad = transfer(
        0,
        async { Err(PipelineError::TooLong { expected: 0 }) },
        upload,
    )
    .await;
    assert!(matches!(
        bad,
        Err(TransferError::Pipeline(PipelineError::TooLong { .. }))
    ));
    assert_eq!(
        started.load(Ordering::SeqCst),
        0,
        "the upload never started"
    );
}
