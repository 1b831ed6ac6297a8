//! When to draw: at most 60 frames a second on average, but a person's key
//! is answered at once.
//!
//! A token bucket of frames: one token every [`FRAME`], at most [`BURST`]
//! saved up. Output floods spend tokens and so are held to the rate; a
//! key's own frame is free (keys come at a person's pace), and the saved
//! tokens let the frame that shows the job's echo, a millisecond later, go
//! out without waiting for its turn.

use std::time::{Duration, Instant};

/// One frame's share of time: 60 a second.
pub const FRAME: Duration = Duration::from_millis(16);
/// Frames that may follow each other without a wait.
pub const BURST: u32 = 3;

#[derive(Debug, Clone)]
pub struct Pacer {
    /// Tokens in units of FRAME, as a fraction: `credit` FRAMEs' worth.
    credit: Duration,
    at: Instant,
}

impl Pacer {
    pub fn new(now: Instant) -> Self {
        Self {
            credit: FRAME * BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at);
        self.credit = (self.credit + earned).min(FRAME * BURST);
        self.at = now;
    }

    /// Whether a frame may be drawn now; `urgent` (a key was handled) always
    /// may, and costs nothing.
    pub fn take(&mut self, now: Instant, urgent: bool) -> bool {
        self.refill(now);
        if urgent {
            return true;
        }
        if self.credit >= FRAME {
            self.credit -= FRAME;
            return true;
        }
        false
    }

    /// When a frame that [`take`](Self::take) refused may be drawn.
    pub fn next(&self) -> Instant {
        self.at + FRAME.saturating_sub(self.credit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_flood_is_held_to_the_frame_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        // Asking every millisecond for a second.
        let drawn = (0..1000).filter(|i| p.take(t0 + ms(*i), false)).count();
        // 1000 / 16 = 62, plus the burst saved up at the start.
        assert!((62..=62 + BURST as usize).contains(&drawn), "{drawn}");
    }

    #[test]
    fn an_echo_right_after_a_key_is_not_delayed() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        // A flood has used up the tokens.
        while p.take(t0, false) {}
        assert!(!p.take(t0, false));
        // The key's frame, then its echo 2 ms later, after a quiet 50 ms.
        let key = t0 + ms(50);
        assert!(p.take(key, true), "a key is always drawn");
        assert!(p.take(key + ms(2), false), "the echo goes out at once");
    }

    #[test]
    fn next_is_when_a_token_is_due() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        while p.take(t0, false) {}
        assert_eq!(p.next(), t0 + FRAME);
        assert!(!p.take(t0 + ms(15), false));
        assert!(p.take(p.next(), false));
    }

    #[test]
    fn keys_cost_nothing() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        for _ in 0..100 {
            assert!(p.take(t0, true));
        }
        assert!(p.take(t0, false), "the saved frames are still there");
    }
}
