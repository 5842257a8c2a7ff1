//! Documents kept where the kernel can send them without a copy.
//!
//! A cached document never changes, so its bytes are written once into a sealed memory file
//! (`memfd_create`, sealed against writing, growing and shrinking) and mapped read-only; the
//! `Bytes` a cache keeps point into that mapping. When hyper hands a connection's socket a slice
//! that lies inside one ([`find`]), the server sends it from the file with `sendfile(2)` (see
//! `http::server`), nginx's path for a static file, instead of copying it through user space:
//! a 443 KB Oracle Health PDF cost 65 µs of CPU per hit written from memory against nginx's 37
//! (#28). Anything else (headers, a copy some layer made) is written as before, so a slice not
//! found costs only the copy, never a wrong byte. A summary's identity JSON (32 KB for the full
//! fixture) is sealed too: with one worker thread beside nginx's one, a hit sent this way cost
//! 10.2 µs of CPU against 10.7 copied (`bench/run.sh`, two alternating pairs, 2026-12-04). On
//! 12-03, with two worker threads, it measured the other way (28.3 against 22.8): the
//! cross-CPU wake-ups of two workers beside the load generator had hidden what the copy costs.
//!
//! Every sealed document holds one file descriptor, and descriptors are what the public
//! listener's connection cap is made of (`http::descriptors`): sealing uses only the ones that
//! cap leaves over ([`allow`]), and past them a document is kept in ordinary memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// Bodies smaller than this are kept in ordinary memory: a descriptor and a mapping (a 4 KiB
/// page at least) are not worth it for a few pages of text, nor a compressed summary (6 KB).
pub const MIN_BYTES: usize = 16 * 1024;

/// Slices shorter than this are copied even from a sealed document: a lookup and a
/// `sendfile` call cost more than copying a few KB (the tail of a large write, a short range).
const MIN_SEND: usize = 16 * 1024;

/// How many documents may be sealed at once (set at start from the descriptor budget).
static ALLOWED: AtomicUsize = AtomicUsize::new(0);
static SEALED: AtomicUsize = AtomicUsize::new(0);
/// Every live mapping: its first address → (one past its last, the file).
static MAPPINGS: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());

/// Lets up to `documents` documents be sealed at once (0 turns sealing off).
pub fn allow(documents: usize) {
    ALLOWED.store(documents, Ordering::Relaxed);
}

/// How many documents are sealed now (for the tests and the metrics).
pub fn count() -> usize {
    SEALED.load(Ordering::Relaxed)
}

/// `bytes` as they are best kept for serving: sealed when large enough and a descriptor is
/// free, else in ordinary memory. Either way the same bytes.
pub fn keep(bytes: &[u8]) -> Bytes {
    if bytes.len() >= MIN_BYTES
        && SEALED
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < ALLOWED.load(Ordering::Relaxed)).then_some(n + 1)
            })
            .is_ok()
    {
        match seal(bytes) {
            Ok(sealed) => return sealed,
            Err(e) => {
                // Refused by the platform (a seccomp filter, no memfd) or out of descriptors:
                // either way later ones would fail too, and descriptors are the connections'.
                SEALED.fetch_sub(1, Ordering::Relaxed);
                allow(0);
                tracing::warn!(error = %e, "could not seal a document; documents are kept in memory from now on");
            }
        }
    }
    Bytes::copy_from_slice(bytes)
}

fn seal(bytes: &[u8]) -> io::Result<Bytes> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create("avs-document", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    // SAFETY: the file is sealed against every change of its contents and size, so the mapping
    // can never change under the slices taken from it, nor lose a page (no SIGBUS).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let start = map.as_ptr() as usize;
    let end = start + map.len();
    MAPPINGS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(start, (end, file.as_raw_fd()));
    Ok(Bytes::from_owner(Sealed { map, file, start }))
}

/// The owner of one sealed document's bytes.
struct Sealed {
    map: memmap2::Mmap,
    #[allow(dead_code)] // held open: `find` hands out its descriptor
    file: File,
    start: usize,
}

impl AsRef<[u8]> for Sealed {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        // Forgotten before the mapping and the file go (the fields drop after this), so no
        // lookup can find a descriptor that is closing.
        MAPPINGS
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.start);
        SEALED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sealed file `slice` lies in and its offset there, when it lies in one and is worth
/// sending from it. The descriptor stays open while `slice` is borrowed: the slice is part of
/// a `Bytes` whose owner holds the file.
pub fn find(slice: &[u8]) -> Option<(RawFd, u64)> {
    if slice.len() < MIN_SEND || SEALED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let at = slice.as_ptr() as usize;
    let mappings = MAPPINGS.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (&start, &(end, fd)) = mappings.range(..=at).next_back()?;
    (at + slice.len() <= end).then_some((fd, (at - start) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_document_is_sealed_found_and_forgotten_when_dropped() {
        allow(usize::MAX);
        let data: Vec<u8> = (0..MIN_BYTES * 2).map(|n| (n % 251) as u8).collect();
        let kept = keep(&data);
        assert_eq!(&kept[..], &data[..], "the same bytes");
        let (fd, offset) = find(&kept[1000..]).expect("sealed and found");
        assert_eq!(offset, 1000);
        // The file refuses every change: the seals hold.
        let mut file =
            std::mem::ManuallyDrop::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        assert!(file.write_all(b"x").is_err(), "a sealed file takes no writes");
        assert!(find(&kept[..MIN_SEND - 1]).is_none(), "short slices are copied");
        let small = keep(&data[..MIN_BYTES - 1]);
        assert!(find(&small).is_none(), "small documents stay in memory");
        let start = kept.as_ptr() as usize;
        drop(kept);
        let mappings = MAPPINGS.read().unwrap();
        assert!(!mappings.contains_key(&start), "forgotten with its bytes");
    }
}
