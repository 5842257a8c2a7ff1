//! The evidence a proportion guard has, readable at any moment (`docs/spec/rollout-guard.md`):
//! e-values, each the mean of likelihood ratios over a fixed grid of alternatives, computed in
//! logarithms so that `n` in the billions stays finite.
//!
//! Each ratio `LR(p1) = (p1/p0)^x · ((1−p1)/(1−p0))^(n−x)` is a test supermartingale under its
//! null, and so is a mean of them: by Ville's inequality the chance that one ever crosses `1/α`
//! while its null holds is at most α, however often it is read. No fixed-horizon p-value.

/// Alternatives above the threshold, as multiples of it: evidence that the rate exceeds it.
const FAIL_GRID: [f64; 6] = [1.25, 1.5, 2.0, 3.0, 5.0, 8.0];
/// Alternatives below it: evidence that the rate is under it.
const PASS_GRID: [f64; 6] = [0.8, 0.65, 0.5, 0.35, 0.2, 0.1];

/// `ln LR(p1)` for `x` failures in `n` trials against threshold `p0`. An alternative of 1 or
/// more is impossible after one success: its ratio is 0 (`-inf`), or the ratio of all failures.
fn ln_ratio(p0: f64, p1: f64, n: u64, x: u64) -> f64 {
    let successes = (n - x.min(n)) as f64;
    let x = x.min(n) as f64;
    if p1 >= 1.0 {
        return if successes > 0.0 {
            f64::NEG_INFINITY
        } else {
            x * (p1 / p0).ln()
        };
    }
    x * (p1 / p0).ln() + successes * ((-p1).ln_1p() - (-p0).ln_1p())
}

/// The mean of `exp(ln_i)`, in logarithms (log-sum-exp), then out of them: saturates at
/// `f64::MAX` rather than infinity, and is 0 rather than NaN when every ratio is 0.
fn mean_of(lns: impl Iterator<Item = f64>) -> f64 {
    let lns: Vec<f64> = lns.collect();
    let top = lns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY {
        return 0.0;
    }
    let sum: f64 = lns.iter().map(|l| (l - top).exp()).sum();
    let ln_mean = top + (sum / lns.len() as f64).ln();
    ln_mean.exp().min(f64::MAX)
}

/// Evidence that the failure rate is above `p0` (`0 < p0 < 1`).
pub fn e_fail(p0: f64, n: u64, x: u64) -> f64 {
    mean_of(FAIL_GRID.iter().map(|k| ln_ratio(p0, k * p0, n, x)))
}

/// Evidence that the failure rate is below `p0`.
pub fn e_pass(p0: f64, n: u64, x: u64) -> f64 {
    mean_of(PASS_GRID.iter().map(|k| ln_ratio(p0, k * p0, n, x)))
}

/// The fewest further clean trials after which `e_pass` reaches `target` (None: never within
/// `u64`; it is monotone in the clean trials added, so a binary search finds the least).
pub fn clean_needed(p0: f64, n: u64, x: u64, target: f64) -> Option<u64> {
    if e_pass(p0, n, x) >= target {
        return Some(0);
    }
    let mut high: u64 = 1;
    while e_pass(p0, n.saturating_add(high), x) < target {
        high = high.checked_mul(2)?;
        n.checked_add(high)?;
    }
    let mut low = high / 2; // e_pass(n + low) < target
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        match e_pass(p0, n + mid, x) >= target {
            true => high = mid,
            false => low = mid,
        }
    }
    Some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six significant figures.
    fn close(got: f64, want: f64) -> bool {
        ((got - want) / want).abs() < 5e-6
    }

    #[test]
    fn the_specs_known_values() {
        let known: [(f64, u64, u64, f64, f64); 8] = [
            (0.0025, 3_000, 20, 297.982, 0.00897337),
            (0.0025, 3_000, 12, 1.28797, 0.0660049),
            (0.0025, 1_759, 0, 0.0757464, 20.0299),
            (0.0025, 1_758, 0, 0.0758094, 19.9914),
            (0.01, 438, 0, 0.0751836, 20.0645),
            (0.05, 86, 0, 0.0717767, 20.4797),
            (0.01, 500, 15, 178.011, 0.0171069),
            (0.0025, 200_000, 375, 1.67979e-19, 2.24042e+06),
        ];
        for (p0, n, x, fail, pass) in known {
            let (f, p) = (e_fail(p0, n, x), e_pass(p0, n, x));
            assert!(close(f, fail), "E_fail({p0}, {n}, {x}) = {f}, not {fail}");
            assert!(close(p, pass), "E_pass({p0}, {n}, {x}) = {p}, not {pass}");
        }
    }

    #[test]
    fn clean_requests_needed_are_the_least_that_pass() {
        assert_eq!(clean_needed(0.0025, 0, 0, 20.0), Some(1_759));
        assert_eq!(clean_needed(0.01, 0, 0, 20.0), Some(438));
        assert_eq!(clean_needed(0.05, 0, 0, 20.0), Some(86));
        assert_eq!(clean_needed(0.0025, 1_000, 0, 20.0), Some(759));
        let m = clean_needed(0.0025, 3_000, 12, 20.0).unwrap();
        assert!(e_pass(0.0025, 3_000 + m, 12) >= 20.0 && e_pass(0.0025, 3_000 + m - 1, 12) < 20.0);
    }

    proptest::proptest! {
        /// Monotone in the failures, and never NaN or infinite, for `n` up to 10^9.
        #[test]
        fn monotone_in_failures_and_always_finite(
            p0 in proptest::sample::select(vec![0.0025, 0.01, 0.05, 0.1]),
            n in 0u64..=1_000_000_000,
            a in 0.0f64..=1.0,
            b in 0.0f64..=1.0,
        ) {
            let (x, y) = ((n as f64 * a.min(b)) as u64, (n as f64 * a.max(b)) as u64);
            let (fx, fy, px, py) = (e_fail(p0, n, x), e_fail(p0, n, y), e_pass(p0, n, x), e_pass(p0, n, y));
            for v in [fx, fy, px, py] {
                proptest::prop_assert!(v.is_finite() && v >= 0.0, "{} {} {} {}: {}", p0, n, x, y, v);
            }
            proptest::prop_assert!(fy >= fx, "E_fail rises with failures: {} {} {}->{}: {} {}", p0, n, x, y, fx, fy);
            proptest::prop_assert!(py <= px, "E_pass falls with failures: {} {} {}->{}: {} {}", p0, n, x, y, px, py);
        }
    }

    #[test]
    fn the_extremes_are_finite() {
        for n in [0, 1, 1_000_000_000] {
            for x in [0, n / 2, n] {
                for p0 in [0.0025, 0.1] {
                    assert!(e_fail(p0, n, x).is_finite() && e_pass(p0, n, x).is_finite());
                }
            }
        }
    }
}
