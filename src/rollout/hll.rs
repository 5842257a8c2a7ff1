//! A HyperLogLog of actor hashes: unique-user counts with about 0.8 % error in 16 KiB, holding no
//! actor ids. Like HLL++, it starts sparse: up to `SPARSE_LIMIT` distinct keyed hashes are kept
//! as a set and counted exactly (a small stage's count is exact), then folded into registers.

use std::collections::HashSet;

const PRECISION: u32 = 14;
const REGISTERS: usize = 1 << PRECISION;
const SPARSE_LIMIT: usize = 4096;

#[derive(Clone)]
pub struct Hll {
    sparse: Option<HashSet<u64>>,
    registers: Box<[u8; REGISTERS]>,
}

impl Default for Hll {
    fn default() -> Hll {
        Hll {
            sparse: Some(HashSet::new()),
            registers: Box::new([0; REGISTERS]),
        }
    }
}

impl std::fmt::Debug for Hll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hll(~{})", self.count())
    }
}

impl Hll {
    /// Adds a 64-bit hash (already keyed and well mixed).
    pub fn add(&mut self, hash: u64) {
        if let Some(set) = &mut self.sparse {
            set.insert(hash);
            if set.len() > SPARSE_LIMIT {
                self.densify();
            }
            return;
        }
        self.add_dense(hash);
    }

    fn densify(&mut self) {
        for hash in self.sparse.take().into_iter().flatten() {
            self.add_dense(hash);
        }
    }

    fn add_dense(&mut self, hash: u64) {
        let index = (hash >> (64 - PRECISION)) as usize;
        // The remaining bits, with a guard bit so the rank is bounded.
        let rest = (hash << PRECISION) | (1 << (PRECISION - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if rank > self.registers[index] {
            self.registers[index] = rank;
        }
    }

    pub fn merge(&mut self, other: &Hll) {
        match &other.sparse {
            Some(set) => set.iter().for_each(|h| self.add(*h)),
            None => {
                self.densify();
                for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
                    *a = (*a).max(*b);
                }
            }
        }
    }

    pub fn count(&self) -> u64 {
        if let Some(set) = &self.sparse {
            return set.len() as u64;
        }
        let m = REGISTERS as f64;
        let zeros = self.registers.iter().filter(|r| **r == 0).count();
        let sum: f64 = self.registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn counts_within_two_percent() {
        let key = std::hash::RandomState::new();
        for n in [1u64, 20, 200, 5_000, 100_000] {
            let mut hll = Hll::default();
            for i in 0..n {
                hll.add(key.hash_one(format!("user-{i}")));
                hll.add(key.hash_one(format!("user-{i}"))); // duplicates don't count
            }
            let c = hll.count() as f64;
            assert!((c - n as f64).abs() <= (n as f64 * 0.02).max(1.0), "{n}: {c}");
            if n <= 4096 {
                assert_eq!(c as u64, n, "exact while sparse");
            }
            let mut merged = Hll::default();
            merged.merge(&hll);
            merged.merge(&hll);
            assert_eq!(merged.count(), hll.count(), "merging is idempotent");
        }
    }
}
