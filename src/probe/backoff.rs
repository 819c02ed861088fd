//! Reconnection delays: exponential (the seed's 1000 ms × 1.5 up to 30000 ms) with jitter, which the
//! seed's sketch promised in its config but never applied. Pure, so it is tested without a clock.

use std::time::Duration;

use crate::config::Reconnection;

/// The delay before attempt `n` (from 0): `min(initial × multiplier^n, max)`, and with jitter a uniform
/// draw from the upper half of that (`r` in [0, 1)), so clients that failed together spread out but
/// never wait less than half the computed delay nor more than the cap.
pub fn delay(n: u32, cfg: &Reconnection, r: f64) -> Duration {
    let base = cfg.initial_delay.as_secs_f64() * cfg.backoff_multiplier.powi(n.min(1000) as i32);
    let capped = base.min(cfg.max_delay.as_secs_f64());
    let d = if cfg.jitter {
        capped * (0.5 + 0.5 * r.clamp(0.0, 1.0))
    } else {
        capped
    };
    Duration::from_secs_f64(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(jitter: bool) -> Reconnection {
        Reconnection {
            max_attempts: 10,
            initial_delay: Duration::from_millis(1000),
            backoff_multiplier: 1.5,
            max_delay: Duration::from_millis(30000),
            jitter,
        }
    }

    #[test]
    fn follows_the_seed_formula_without_jitter() {
        let c = seed(false);
        let ms: Vec<u128> = (0..10).map(|n| delay(n, &c, 0.0).as_millis()).collect();
        assert_eq!(
            ms,
            [1000, 1500, 2250, 3375, 5062, 7593, 11390, 17085, 25628, 30000]
        );
        assert_eq!(delay(50, &c, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spreads_within_the_upper_half_and_never_exceeds_the_cap() {
        let c = seed(true);
        assert_eq!(delay(0, &c, 0.0), Duration::from_millis(500));
        assert_eq!(delay(0, &c, 1.0), Duration::from_millis(1000));
        let a = delay(3, &c, 0.1);
        let b = delay(3, &c, 0.9);
        assert!(a < b && a >= Duration::from_millis(1687) && b <= Duration::from_millis(3375));
        for r in [0.0, 0.5, 0.999] {
            assert!(delay(40, &c, r) <= Duration::from_secs(30));
            assert!(delay(40, &c, r) >= Duration::from_secs(15));
        }
    }
}
