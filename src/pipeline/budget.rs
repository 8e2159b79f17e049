//! The pipeline's buffer, bounded in bytes: every frame between the source and the slowest of
//! the two hashers and the sink holds its share of one byte budget, whatever size the source
//! delivers frames in.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The least a frame counts against the budget, so that a source sending tiny frames cannot make
/// the pipeline queue them by the million (each frame also costs a few dozen bytes of bookkeeping).
pub const MIN_FRAME_CHARGE: usize = 4096;

/// Bytes the pipeline may hold: frames read from the source and not yet both hashed and taken by
/// the sink.
#[derive(Clone)]
pub(super) struct Budget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// A frame on its way through the pipeline, with its share of the budget. Clones share that
/// share, which returns to the budget when the last clone is dropped: after both hashers have
/// hashed the frame and the sink has taken it.
#[derive(Clone)]
pub struct Charged {
    data: Bytes,
    _share: Arc<OwnedSemaphorePermit>,
}

impl Charged {
    /// The frame's bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The frame's bytes, giving up this clone's hold on the budget.
    pub fn into_data(self) -> Bytes {
        self.data
    }
}

impl Budget {
    /// A budget of `buffer_bytes`, raised to two frames of `chunk_size` if it is smaller: the
    /// pump holds back the last frame while it reads the next, so two must always fit.
    pub(super) fn new(buffer_bytes: usize, chunk_size: usize) -> Budget {
        let frame = chunk_size.max(MIN_FRAME_CHARGE);
        let total = buffer_bytes
            .max(frame.saturating_mul(2))
            .min(u32::MAX as usize);
        Budget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// How many frames can be in the pipeline at most: the capacity its channels need so that
    /// only the byte budget ever makes the pump wait.
    pub(super) fn max_frames(&self) -> usize {
        self.total / MIN_FRAME_CHARGE + 1
    }

    /// Waits until `data` fits in the budget, then charges it.
    pub(super) async fn charge(&self, data: Bytes) -> Charged {
        // At most `total`, which fits a `u32`: a frame larger than the whole budget waits for
        // all of it.
        let cost = data.len().max(MIN_FRAME_CHARGE).min(self.total) as u32;
        let share = match self.bytes.clone().acquire_many_owned(cost).await {
            Ok(share) => share,
            // The semaphore is never closed: unreachable, and harmless if it were.
            Err(_) => unreachable!("the pipeline's byte budget is never closed"),
        };
        Charged {
            data,
            _share: Arc::new(share),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    use super::*;

    /// Polls `charge` once: whether it got its share without waiting.
    fn fits(charge: impl Future<Output = Charged>) -> Option<Charged> {
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(charge).poll(&mut cx) {
            std::task::Poll::Ready(charged) => Some(charged),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn a_budget_below_two_chunks_is_raised_to_two() {
        let budget = Budget::new(64 << 10, 1 << 20);
        let chunk = Bytes::from(vec![0; 1 << 20]);
        let first = fits(budget.charge(chunk.clone())).expect("one chunk fits");
        let _second = fits(budget.charge(chunk.clone())).expect("two chunks fit");
        assert!(fits(budget.charge(chunk.clone())).is_none());
        let copy = first.clone();
        drop(first);
        assert!(
            fits(budget.charge(chunk.clone())).is_none(),
            "a clone holds the share"
        );
        assert_eq!(copy.into_data().len(), 1 << 20);
        assert!(
            fits(budget.charge(chunk)).is_some(),
            "the last clone returned it"
        );
    }

    #[test]
    fn tiny_frames_count_as_the_least_charge() {
        let budget = Budget::new(64 << 10, 4096);
        let held: Vec<Charged> = (0..16)
            .map(|_| fits(budget.charge(Bytes::from_static(b"x"))).expect("fits"))
            .collect();
        assert!(fits(budget.charge(Bytes::from_static(b"x"))).is_none());
        assert_eq!(held.len() * MIN_FRAME_CHARGE, 64 << 10);
        assert_eq!(budget.max_frames(), 17);
    }
}
