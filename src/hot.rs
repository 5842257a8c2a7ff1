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
    /// Whether two values are the same moka entry (compared by identity: a newer entry under
    /// the same key is another one).
    same: fn(&V, &V) -> bool,
}

/// What a read through a hot map found.
pub enum Read<V, M> {
    /// A fresh entry of the hot map: moka's bookkeeping skipped.
    Hot(V),
    /// What moka holds, fresh or not (the caller judges: a stale entry may still serve when
    /// its source fails); one `promote` gave, and fresh, is in the hot map now.
    Held(Option<M>),
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher + Default> Hot<K, V, S> {
    pub fn new(same: fn(&V, &V) -> bool) -> Self {
        Hot {
            map: RwLock::new(HashMap::default()),
            same,
        }
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Hot<K, V, S> {
    /// The entry for `key`: from the hot map when it is there and `fresh` (one read in
    /// [`TOUCH_ONE_IN`] also `held`, moka's read, for its recency and frequency), else `held`.
    /// The hot value `promote` gives of what moka holds, when fresh, is kept for the next hits
    /// under `owned(key)`.
    pub fn read<Q, M>(
        &self,
        key: &Q,
        fresh: impl Fn(&V) -> bool,
        held: impl Fn() -> Option<M>,
        promote: impl Fn(&M) -> Option<V>,
        owned: impl FnOnce(&Q) -> K,
    ) -> Read<V, M>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(hit) = self.get(key, &fresh) {
            if touch() {
                let _ = held();
            }
            return Read::Hot(hit);
        }
        let found = held();
        if let Some(value) = found.as_ref().and_then(&promote).filter(|value| fresh(value)) {
            let still_held = || {
                held()
                    .and_then(|now| promote(&now))
                    .is_some_and(|now| (self.same)(&now, &value))
            };
            self.keep(owned(key), value.clone(), still_held);
        }
        Read::Held(found)
    }

    /// The entry for `key`, if it is here and `fresh` says it may still be served.
    fn get<Q>(&self, key: &Q, fresh: impl FnOnce(&V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(key).filter(|value| fresh(value)).cloned()
    }

    /// Keeps `value`, which a moka read just returned. moka may have let it go since that
    /// read, its listener then finding nothing here to take out: so, once it is here,
    /// `still_held` asks moka again, and it leaves if moka no longer holds it (a removal after
    /// that question finds it here, and takes it out).
    fn keep(&self, key: K, value: V, still_held: impl FnOnce() -> bool)
    where
        K: Clone,
    {
        let kept = value.clone();
        {
            let mut map = self.map.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            map.insert(key.clone(), value);
        }
        if !still_held() {
            self.forget(&key, &kept);
        }
    }

    /// Lets the entry for `key` go if it is `left`, the one moka let go (moka's removal
    /// listener calls this).
    pub fn forget<Q>(&self, key: &Q, left: &V)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.map.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.get(key).is_some_and(|here| (self.same)(here, left)) {
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
fn touch() -> bool {
    fastrand::u32(..TOUCH_ONE_IN) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::Arc;

    type Map = Hot<String, Arc<u32>>;

    fn map() -> Map {
        Hot::new(Arc::ptr_eq)
    }

    /// A read of `hot` in front of `moka` (what a moka read would return, one call each).
    fn read(hot: &Map, moka: &dyn Fn() -> Option<Arc<u32>>, fresh: bool) -> Read<Arc<u32>, Arc<u32>> {
        hot.read("a", |_| fresh, moka, |held| Some(held.clone()), str::to_owned)
    }

    #[test]
    fn a_fresh_entry_moka_holds_is_served_hot_from_the_next_read() {
        let hot = map();
        let entry = Arc::new(1);
        let reads = Cell::new(0);
        let moka = || {
            reads.set(reads.get() + 1);
            Some(entry.clone())
        };
        assert!(matches!(read(&hot, &moka, true), Read::Held(Some(held)) if Arc::ptr_eq(&held, &entry)));
        assert_eq!(hot.len(), 1, "promoted");
        let before = reads.get();
        let hot_reads = (0..64)
            .filter(|_| matches!(read(&hot, &moka, true), Read::Hot(_)))
            .count();
        assert_eq!(hot_reads, 64);
        assert!(
            reads.get() - before < 32,
            "most hits skip moka: {}",
            reads.get() - before
        );
        assert!(
            matches!(read(&hot, &moka, false), Read::Held(Some(_))),
            "a stale entry is not served hot"
        );
    }

    #[test]
    fn a_stale_entry_is_handed_back_but_not_kept() {
        let hot = map();
        let moka = || Some(Arc::new(1));
        assert!(matches!(read(&hot, &moka, false), Read::Held(Some(_))));
        assert!(hot.is_empty());
        assert!(matches!(read(&hot, &|| None, true), Read::Held(None)));
        assert!(hot.is_empty());
    }

    #[test]
    fn an_entry_moka_let_go_meanwhile_does_not_stay() {
        let hot = map();
        let entry = Arc::new(1);
        // moka returns it once, then has let it go (evicted between the read and the promotion).
        let left = Cell::new(false);
        let moka = || (!left.replace(true)).then(|| entry.clone());
        assert!(matches!(read(&hot, &moka, true), Read::Held(Some(_))));
        assert!(hot.is_empty(), "moka no longer held it");
        // Replaced meanwhile by a newer entry: the older one does not stay either.
        let newer = Arc::new(2);
        let calls = Cell::new(0);
        let moka = || {
            calls.set(calls.get() + 1);
            Some(if calls.get() == 1 {
                entry.clone()
            } else {
                newer.clone()
            })
        };
        let _ = read(&hot, &moka, true);
        assert!(hot.is_empty(), "the replaced entry left");
    }

    #[test]
    fn forgetting_an_older_entry_leaves_the_newer_one() {
        let hot = map();
        let older = Arc::new(1);
        let newer = Arc::new(2);
        let _ = read(&hot, &|| Some(newer.clone()), true);
        hot.forget("a", &older);
        assert!(matches!(read(&hot, &|| None, true), Read::Hot(here) if Arc::ptr_eq(&here, &newer)));
        hot.forget("a", &newer);
        assert!(hot.is_empty());
    }

    #[test]
    fn about_one_hit_in_touch_one_in_reads_through_moka() {
        let touched = (0..16_000).filter(|_| touch()).count();
        assert!((600..1_500).contains(&touched), "{touched}");
    }
}
