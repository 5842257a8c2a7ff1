//! What a cache holds and is being read now, found without moka's read bookkeeping.
//!
//! A moka `get` (its hash table under an epoch guard, the read recorded in a buffer, the
//! housekeeping it may trigger) was ~1,700 of a cached hit's ~25,400 instructions, and a hit
//! makes two: the token and the summary (callgrind, #28). A [`Hot`] map in front of each holds
//! the entries moka holds, behind a read lock: a hit is a hash and a compare.
//!
//! moka stays the one owner of what is kept: nothing enters a hot map but an entry a moka read
//! just returned, and moka's removal listener takes it out when moka lets it go (evicted,
//! expired, replaced), compared by identity so that a newer entry under the same key stays.
//! So the cache's byte budget still bounds memory (an entry here shares moka's `Arc`s). Each
//! entry carries its own deadline, checked on every hit, so a hit never outlives what moka
//! would have served, whenever its housekeeping runs. One hit in [`TOUCH_ONE_IN`], at random,
//! still reads through moka, so its recency and frequency keep the entries read most from
//! being evicted first.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::RwLock;

/// One hit in this many reads through moka as well (its frequency sketch counts saturate at
/// 15: an entry read a few times a second still counts as often read).
pub const TOUCH_ONE_IN: u32 = 16;

pub struct Hot<K, V, S = foldhash::fast::RandomState> {
    map: RwLock<HashMap<K, V, S>>,
}

impl<K, V, S: Default> Default for Hot<K, V, S> {
    fn default() -> Self {
        Hot {
            map: RwLock::new(HashMap::default()),
        }
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Hot<K, V, S> {
    /// The entry for `key`, if it is here and `fresh` says it may still be served.
    pub fn get<Q>(&self, key: &Q, fresh: impl FnOnce(&V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(key).filter(|value| fresh(value)).cloned()
    }

    /// Keeps `value`, which a moka read just returned, for the next hits. moka may have let it
    /// go since that read, its listener then finding nothing here to take out: so, once it is
    /// here, `still_held` asks moka again, and it leaves if moka no longer holds it (a removal
    /// after that question finds it here, and takes it out).
    pub fn keep(&self, key: K, value: V, still_held: impl FnOnce() -> bool, same: impl Fn(&V, &V) -> bool)
    where
        K: Clone,
    {
        let kept = value.clone();
        {
            let mut map = self.map.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            map.insert(key.clone(), value);
        }
        if !still_held() {
            self.forget(&key, |here| same(here, &kept));
        }
    }

    /// Lets the entry for `key` go, if `same` says it is still the one moka let go.
    pub fn forget<Q>(&self, key: &Q, same: impl FnOnce(&V) -> bool)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.map.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.get(key).is_some_and(same) {
            map.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a hit should also read through moka.
pub fn touch() -> bool {
    fastrand::u32(..TOUCH_ONE_IN) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    type Map = Hot<String, Arc<u32>>;

    #[test]
    fn an_entry_moka_let_go_meanwhile_does_not_stay() {
        let hot = Map::default();
        hot.keep("a".into(), Arc::new(1), || false, Arc::ptr_eq);
        assert!(hot.is_empty(), "moka no longer held it");
        hot.keep("a".into(), Arc::new(1), || true, Arc::ptr_eq);
        assert_eq!(hot.get("a", |_| true).as_deref(), Some(&1));
        assert_eq!(hot.get("a", |_| false), None, "a stale entry is not served");
    }

    #[test]
    fn forgetting_an_older_entry_leaves_the_newer_one() {
        let hot = Map::default();
        let older = Arc::new(1);
        let newer = Arc::new(2);
        hot.keep("a".into(), newer.clone(), || true, Arc::ptr_eq);
        hot.forget("a", |here| Arc::ptr_eq(here, &older));
        assert_eq!(hot.get("a", |_| true).as_deref(), Some(&2));
        hot.forget("a", |here| Arc::ptr_eq(here, &newer));
        assert!(hot.is_empty());
    }

    #[test]
    fn about_one_hit_in_touch_one_in_reads_through_moka() {
        let touched = (0..16_000).filter(|_| touch()).count();
        assert!((600..1_500).contains(&touched), "{touched}");
    }
}
