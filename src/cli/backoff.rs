//! Capped exponential backoff with "equal jitter" for `eddy watch` reconnects.
//!
//! Attempt n (0-based) waits `d = min(cap, base * 2^n)` split as `d/2 + rand(0..=d/2)`, so a
//! fleet of watchers does not reconnect in lock-step, yet every wait is at least half the
//! nominal delay. The state is reset after a successful (re)open of the change stream.

use std::time::Duration;

/// Backoff state.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// 100 ms doubling up to 10 s: what `eddy watch` uses.
    pub fn new() -> Self {
        Self::with_limits(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// A backoff with explicit limits.
    pub fn with_limits(base: Duration, cap: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        Self {
            base,
            cap,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The nominal (un-jittered) delay of the next attempt.
    pub fn nominal(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay to sleep before the next attempt; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        let half_ms = half.as_millis() as u64;
        let jitter = if half_ms == 0 {
            0
        } else {
            self.next_random() % (half_ms + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// Number of consecutive failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Forget past failures (call after the stream was opened successfully).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter, and no extra dependency.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let mut b = Backoff::new();
        let nominal: Vec<u64> = (0..10)
            .map(|_| {
                let n = b.nominal().as_millis() as u64;
                b.next_delay();
                n
            })
            .collect();
        assert_eq!(
            nominal,
            vec![100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(b.attempts(), 10);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let mut b = Backoff::new();
        for _ in 0..200 {
            let nominal = b.nominal();
            let d = b.next_delay();
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
        }
    }

    #[test]
    fn reset_starts_over_and_huge_attempts_do_not_overflow() {
        let mut b = Backoff::new();
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.nominal(), Duration::from_secs(10));
        b.reset();
        assert_eq!(b.nominal(), Duration::from_millis(100));
    }
}
