//! Retry pacing, written once: how many attempts an operation gets, and the pause before each
//! further one (exponential, optionally capped and jittered). Every retry loop (source resume,
//! S3 parts, the task summary on the image, `sync`'s jobs and import requests) counts its
//! attempts with an [`Attempts`] from its own [`Backoff`].
//!
//! [`Attempts`]: crate::backoff::Attempts
//! [`Backoff`]: crate::backoff::Backoff

use std::time::Duration;

/// Largest doubling applied to [`Backoff::first`] (2^16 times), so the pause cannot overflow.
const MAX_DOUBLINGS: u32 = 16;

/// How many attempts, and how long to pause between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// The pause before the second attempt; doubled before each further one.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// Whether half of each pause is random ("equal jitter"), so that many clients that failed
    /// together do not retry in lockstep.
    pub jitter: bool,
}

impl Backoff {
    /// `attempts` in all, the pause doubling from `first`, uncapped and without jitter.
    pub const fn new(attempts: u32, first: Duration) -> Backoff {
        Backoff {
            attempts,
            first,
            max: Duration::MAX,
            jitter: false,
        }
    }

    /// The same, with no pause longer than `max`.
    pub const fn capped(self, max: Duration) -> Backoff {
        Backoff { max, ..self }
    }

    /// The same, with half of each pause random.
    pub const fn jittered(self) -> Backoff {
        Backoff {
            jitter: true,
            ..self
        }
    }

    /// The pause after failed attempt number `failed` (1-based): `first` × 2^(failed−1), at most
    /// `max`; with jitter, between half of that and all of it.
    pub fn delay(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(MAX_DOUBLINGS);
        let pause = self.first.saturating_mul(1u32 << doublings).min(self.max);
        if !self.jitter {
            return pause;
        }
        let half = pause / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// A fresh count of attempts for one operation.
    pub fn start(self) -> Attempts {
        Attempts {
            backoff: self,
            failed: 0,
        }
    }
}

/// One operation's attempts under a [`Backoff`].
#[derive(Debug, Clone)]
pub struct Attempts {
    backoff: Backoff,
    failed: u32,
}

impl Attempts {
    /// Counts a failed attempt. Returns the pause before the next attempt, or `None` when the
    /// attempts are used up.
    pub fn failed(&mut self) -> Option<Duration> {
        self.failed = self.failed.saturating_add(1);
        (self.failed < self.backoff.attempts).then(|| self.backoff.delay(self.failed))
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_double_from_the_first() {
        let backoff = Backoff::new(5, 200 * MS);
        let pauses: Vec<_> = (1..=4).map(|n| backoff.delay(n)).collect();
        assert_eq!(pauses, [200 * MS, 400 * MS, 800 * MS, 1600 * MS]);
    }

    #[test]
    fn pauses_stop_growing_at_the_cap() {
        let backoff = Backoff::new(10, Duration::from_secs(2)).capped(Duration::from_secs(30));
        let pauses: Vec<_> = (1..=6).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(pauses, [2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let uncapped = Backoff::new(u32::MAX, Duration::from_secs(1));
        assert_eq!(
            uncapped.delay(u32::MAX),
            Duration::from_secs(1 << MAX_DOUBLINGS)
        );
        let long = Backoff::new(u32::MAX, Duration::MAX / 2);
        assert_eq!(long.delay(40), Duration::MAX);
    }

    #[test]
    fn jitter_keeps_between_half_and_all_of_the_pause() {
        let backoff = Backoff::new(8, 100 * MS).capped(300 * MS).jittered();
        for failed in 1..=6 {
            let plain = backoff.delay(failed);
            let full = Backoff {
                jitter: false,
                ..backoff
            }
            .delay(failed);
            assert!(plain >= full / 2 && plain <= full, "{plain:?} of {full:?}");
        }
    }

    #[test]
    fn attempts_run_out_after_the_last_one() {
        let mut attempts = Backoff::new(3, 10 * MS).start();
        assert_eq!(attempts.failed(), Some(10 * MS));
        assert_eq!(attempts.failed(), Some(20 * MS));
        assert_eq!(attempts.failed(), None, "the third attempt was the last");
        assert_eq!(attempts.failures(), 3);
    }

    #[test]
    fn a_single_attempt_is_never_retried() {
        let mut once = Backoff::new(1, 10 * MS).start();
        assert_eq!(once.failed(), None);
        let mut never = Backoff::new(0, 10 * MS).start();
        assert_eq!(never.failed(), None);
    }
}
