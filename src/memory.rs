//! The process's memory as its allocator sees it: jemalloc's statistics (live bytes, the pages
//! it holds, what it keeps mapped), for benches and diagnostics. The resident set the kernel
//! reports also holds the binary's code and thread stacks; these numbers say how much of it is
//! live data and how much the allocator keeps around.

/// A snapshot of jemalloc's statistics, in bytes (its `stats.*` counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes the application holds (`stats.allocated`).
    pub allocated: u64,
    /// Bytes in pages with live allocations (`stats.active`).
    pub active: u64,
    /// Bytes of the allocator's pages resident in memory, metadata included (`stats.resident`).
    pub resident: u64,
    /// Bytes mapped and not yet returned to the system (`stats.mapped`).
    pub mapped: u64,
}

/// The allocator's statistics now; `None` when the process does not use jemalloc (the
/// `jemalloc` feature is off) or the statistics cannot be read.
pub fn allocator_stats() -> Option<AllocatorStats> {
    imp::stats()
}

#[cfg(feature = "jemalloc")]
mod imp {
    use super::AllocatorStats;
    use std::ffi::{c_void, CStr};

    fn read_u64(name: &CStr) -> Option<u64> {
        let mut value: usize = 0;
        let mut len = std::mem::size_of::<usize>();
        // SAFETY: `name` is NUL-terminated; `value` and `len` describe a `size_t`, the type of
        // every `stats.*` byte counter read here; no new value is written.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&mut value as *mut usize).cast::<c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0).then_some(value as u64)
    }

    pub(super) fn stats() -> Option<AllocatorStats> {
        // The counters are cached; writing `epoch` refreshes them.
        let mut epoch: u64 = 1;
        let mut len = std::mem::size_of::<u64>();
        // SAFETY: `epoch` takes and returns a `uint64_t`; both pointers describe one.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"epoch".as_ptr(),
                (&mut epoch as *mut u64).cast::<c_void>(),
                &mut len,
                (&mut epoch as *mut u64).cast::<c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
        if rc != 0 {
            return None;
        }
        Some(AllocatorStats {
            allocated: read_u64(c"stats.allocated")?,
            active: read_u64(c"stats.active")?,
            resident: read_u64(c"stats.resident")?,
            mapped: read_u64(c"stats.mapped")?,
        })
    }
}

#[cfg(not(feature = "jemalloc"))]
mod imp {
    pub(super) fn stats() -> Option<super::AllocatorStats> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jemalloc")]
    #[test]
    fn live_bytes_count_a_held_allocation_and_stay_within_the_resident_pages() {
        // The counters are the process's: tests running beside this one allocate and free at
        // the same time, so only what the held block guarantees is checked (comparing with a
        // reading taken before it failed whenever another test freed more in between).
        let block = vec![1u8; 64 << 20];
        let during = allocator_stats().expect("jemalloc statistics");
        assert!(during.allocated >= 64 << 20, "{during:?}");
        assert!(during.active >= during.allocated);
        assert!(during.mapped >= during.active);
        drop(std::hint::black_box(block));
    }
}
