//! A single-producer, single-consumer ring of variable-length records in shared memory.
//!
//! Layout of the mapping: a 256-byte header — the producer's position (u64 at 0), the
//! consumer's position (u64 at 64), "consumer sleeps" (u32 at 128), "producer sleeps" (u32 at
//! 192), each on its own cache line — then the data area, a power of two in size. Positions
//! only grow; a record is `[u32 length][u32 0][payload, padded to 8]`; a record that would not
//! fit before the end of the area is preceded by a wrap marker (length `u32::MAX`).
//!
//! Positions are published with release stores and read with acquire loads. The peer is not
//! trusted: every length read from the shared area is bounds-checked, payloads are *copied* out
//! (never borrowed from memory the peer may write), and a corrupt ring reports an error instead
//! of misbehaving.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::memfd::SharedView;

/// Bytes before the data area.
pub const HEADER: usize = 256;
const WRAP: u32 = u32::MAX;

/// One side's view of a ring.
#[derive(Debug)]
pub struct Ring {
    view: SharedView,
    capacity: usize,
    /// The producer's last reading of the consumer's position (process-local): the shared one
    /// is read again only when this says the ring is full, so a push does not pull the
    /// consumer's cache line over every time.
    seen_tail: AtomicU64,
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

impl Ring {
    /// A ring over a whole shared view (writable for the producer; the consumer also writes its
    /// position, so both need writable views). The data area (`len - HEADER`) must be a power
    /// of two, at least 64 bytes.
    pub fn new(view: SharedView) -> io::Result<Ring> {
        let len = view.as_bytes().len();
        let capacity = len.saturating_sub(HEADER);
        if capacity < 64 || !capacity.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a ring needs {HEADER} + a power of two ≥ 64 bytes, got {len}"),
            ));
        }
        if !(view.as_bytes().as_ptr() as usize).is_multiple_of(64) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "ring mapping is not aligned"));
        }
        let seen_tail = AtomicU64::new(0);
        let ring = Ring { view, capacity, seen_tail };
        ring.seen_tail.store(ring.tail().load(Ordering::Acquire), Ordering::Relaxed);
        Ok(ring)
    }

    /// The size of the data area.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest record.
    pub fn max_record(&self) -> usize {
        self.capacity / 2 - 8
    }

    fn base(&self) -> *mut u8 {
        self.view.as_bytes().as_ptr().cast_mut()
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off + 8 <= HEADER && off.is_multiple_of(8));
        // SAFETY: `off` is a constant inside the 256-byte header, 8-aligned (the mapping is
        // page-aligned); the mapping lives as long as `self`; AtomicU64 has the layout of u64,
        // and every access to these bytes, here and in the peer, is atomic.
        unsafe { &*self.base().add(off).cast::<AtomicU64>() }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off + 4 <= HEADER && off.is_multiple_of(4));
        // SAFETY: as in `u64_at`, for a 4-aligned u32 of the header.
        unsafe { &*self.base().add(off).cast::<AtomicU32>() }
    }

    fn head(&self) -> &AtomicU64 {
        self.u64_at(0)
    }

    fn tail(&self) -> &AtomicU64 {
        self.u64_at(64)
    }

    /// The "consumer sleeps" (`true`) or "producer sleeps" flag.
    pub fn sleeping_flag(&self, consumer: bool) -> &AtomicU32 {
        self.u32_at(if consumer { 128 } else { 192 })
    }

    fn data(&self, idx: usize, n: usize) -> *mut u8 {
        debug_assert!(idx + n <= self.capacity);
        // SAFETY: `idx + n ≤ capacity` (checked by every caller), so the pointer stays inside
        // the data area of the mapping.
        unsafe { self.base().add(HEADER + idx) }
    }

    fn corrupt(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("ring corrupted: {what}"))
    }

    /// Producer: appends a record if there is room; `Ok(false)` when full.
    pub fn try_push(&self, record: &[u8]) -> io::Result<bool> {
        if record.len() > self.max_record() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record of {} bytes, the ring takes at most {}",
                    record.len(),
                    self.max_record()
                ),
            ));
        }
        let need = 8 + pad8(record.len());
        let head = self.head().load(Ordering::Relaxed);
        let idx = (head as usize) & (self.capacity - 1);
        let to_end = self.capacity - idx;
        let (start, skip) = if need <= to_end { (idx, 0) } else { (0, to_end) };
        // The consumer only moves its position forward, so free space by an older reading is a
        // lower bound: read the shared position only when that bound is not enough.
        let used = head.wrapping_sub(self.seen_tail.load(Ordering::Relaxed)) as usize;
        if used > self.capacity || self.capacity - used < need + skip {
            let tail = self.tail().load(Ordering::Acquire);
            let used = head.wrapping_sub(tail) as usize;
            if used > self.capacity {
                return Err(Self::corrupt("consumer position ahead of producer"));
            }
            self.seen_tail.store(tail, Ordering::Relaxed);
            if self.capacity - used < need + skip {
                return Ok(false);
            }
        }
        if skip > 0 {
            // SAFETY: `idx + 4 ≤ capacity` (to_end ≥ 8: positions advance in multiples of 8);
            // the consumer reads these bytes only after the release store of `head` below.
            unsafe { self.data(idx, 4).cast::<u32>().write_unaligned(WRAP) };
        }
        // SAFETY: `start + need ≤ capacity` (chosen above); the consumer does not read this
        // region until `head` is published; `record` is a live slice of its length.
        unsafe {
            let p = self.data(start, need);
            p.cast::<u32>().write_unaligned(record.len() as u32);
            p.add(4).cast::<u32>().write_unaligned(0);
            std::ptr::copy_nonoverlapping(record.as_ptr(), p.add(8), record.len());
        }
        self.head().store(head + (skip + need) as u64, Ordering::Release);
        Ok(true)
    }

    /// Consumer: copies the next record into `out` (replacing its content); `Ok(false)` when
    /// empty.
    pub fn try_pop(&self, out: &mut Vec<u8>) -> io::Result<bool> {
        let mut tail = self.tail().load(Ordering::Relaxed);
        loop {
            let head = self.head().load(Ordering::Acquire);
            if tail == head {
                return Ok(false);
            }
            let avail = head.wrapping_sub(tail) as usize;
            if avail > self.capacity {
                return Err(Self::corrupt("producer position out of range"));
            }
            let idx = (tail as usize) & (self.capacity - 1);
            if self.capacity - idx < 8 || avail < 8 {
                return Err(Self::corrupt("record header crosses the end"));
            }
            // SAFETY: `idx + 8 ≤ capacity` (checked); the producer published these bytes with the
            // release store the acquire load above pairs with.
            let len = unsafe { self.data(idx, 4).cast::<u32>().read_unaligned() };
            if len == WRAP {
                let skip = self.capacity - idx;
                if skip > avail {
                    return Err(Self::corrupt("wrap marker beyond the data"));
                }
                tail += skip as u64;
                continue;
            }
            let len = len as usize;
            let need = 8 + pad8(len);
            if len > self.max_record() || idx + need > self.capacity || need > avail {
                return Err(Self::corrupt("record length out of range"));
            }
            out.clear();
            out.reserve(len);
            // SAFETY: source `idx + 8 .. idx + 8 + len` is inside the data area (checked);
            // the destination has room for `len` bytes (reserved), set as initialised after.
            unsafe {
                std::ptr::copy_nonoverlapping(self.data(idx + 8, len), out.as_mut_ptr(), len);
                out.set_len(len);
            }
            self.tail().store(tail + need as u64, Ordering::Release);
            return Ok(true);
        }
    }

    /// Whether the ring holds no record (the consumer's view).
    pub fn is_empty(&self) -> bool {
        self.tail().load(Ordering::Relaxed) == self.head().load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(cap: usize) -> (Ring, Ring) {
        let fd = crate::memfd::create_fixed_size("ring", (HEADER + cap) as u64).unwrap();
        let a = SharedView::map(&fd, HEADER + cap, true).unwrap();
        let b = SharedView::map(&fd, HEADER + cap, true).unwrap();
        (Ring::new(a).unwrap(), Ring::new(b).unwrap())
    }

    #[test]
    fn records_in_order_with_wrap_around() {
        let (p, c) = ring(256);
        let mut out = Vec::new();
        for round in 0..200u32 {
            let rec: Vec<u8> = (0..(round % 90) as u8).collect();
            assert!(p.try_push(&rec).unwrap(), "round {round}");
            assert!(c.try_pop(&mut out).unwrap());
            assert_eq!(out, rec);
        }
        assert!(!c.try_pop(&mut out).unwrap());
        // Fill until full.
        let mut n = 0;
        while p.try_push(&[7u8; 40]).unwrap() {
            n += 1;
        }
        assert!(n >= 4, "{n}");
        // Room made by the consumer is seen again (the producer's reading of it is refreshed).
        assert!(c.try_pop(&mut out).unwrap());
        assert!(p.try_push(&[8u8; 40]).unwrap());
        assert!(!p.try_push(&[8u8; 40]).unwrap());
        assert!(p.try_push(&[0u8; 200]).is_err(), "too big for this ring");
    }

    #[test]
    fn across_threads() {
        let (p, c) = ring(4096);
        let t = std::thread::spawn(move || {
            for i in 0..20_000u32 {
                while !p.try_push(&i.to_le_bytes()).unwrap() {
                    std::hint::spin_loop();
                }
            }
        });
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            while !c.try_pop(&mut out).unwrap() {
                std::hint::spin_loop();
            }
            assert_eq!(out, i.to_le_bytes());
        }
        t.join().unwrap();
    }

    #[test]
    fn a_corrupt_ring_is_reported() {
        let (p, c) = ring(256);
        p.try_push(b"abc").unwrap();
        // The peer scribbles a huge length.
        // SAFETY: the first data bytes of the mapping, inside it.
        unsafe { p.data(0, 4).cast::<u32>().write_unaligned(1_000_000) };
        let mut out = Vec::new();
        assert!(c.try_pop(&mut out).is_err());
        // A consumer position moved past the producer's is reported once the producer reads it.
        c.tail().store(10_000, Ordering::Release);
        let mut pushed = 0;
        let err = loop {
            match p.try_push(&[1u8; 16]) {
                Ok(true) => pushed += 1,
                Ok(false) => panic!("a full ring instead of an error"),
                Err(e) => break e,
            }
            assert!(pushed < 100, "never reported");
        };
        assert!(err.to_string().contains("ahead of producer"), "{err}");
    }
}
