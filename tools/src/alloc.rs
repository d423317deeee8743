//! The process allocator: the system allocator, except that a request of
//! [`HUGE`] bytes or more is reserved with `mmap(MAP_NORESERVE)`.
//!
//! Why: `kafka-protocol` 0.18 pre-allocates collections from counts read off
//! the wire before decoding a single element (`Vec::with_capacity(n)` for
//! arrays, `reserve(record_count)` for records, `with_capacity` for record
//! headers). A 19-byte Metadata request that declares 2^31-1 topics asks for
//! about 150 GB at once; the system allocator refuses, and Rust aborts the
//! process when an allocation fails — one packet would stop the broker. A
//! `MAP_NORESERVE` mapping of that size succeeds without committing memory:
//! decoding then fails at the first missing element, the collection is
//! dropped, and the untouched mapping is returned. Allocations below [`HUGE`]
//! (everything Strata itself asks for: frames are capped by
//! `socket.request.max.bytes`) take the system allocator's path unchanged.
//!
//! Upstream fixes that bound the pre-allocation are proposed
//! (kafka-protocol-rs pull requests 152, 161, 200); once a release has one,
//! this module can go.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Requests at least this large are reserved lazily.
const HUGE: usize = 1 << 30;
/// `mmap` returns page-aligned memory, and pages are at least this large.
const MIN_PAGE: usize = 4096;

pub struct Allocator;

fn is_huge(size: usize, align: usize) -> bool {
    size >= HUGE && align <= MIN_PAGE
}

/// Reserves `size` bytes of zeroed address space without committing memory.
fn reserve(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory; failure is reported as MAP_FAILED.
    let mapped = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        mapped.cast()
    }
}

// SAFETY: every block comes either from `System` or from `reserve`, and the
// layout (which the caller passes back unchanged to `dealloc`) decides which,
// so each block is returned to the allocator that produced it. Mappings are
// page-aligned, satisfying any alignment up to MIN_PAGE, and zero-filled.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            reserve(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout.size(), layout.align()) {
            reserve(layout.size()) // anonymous mappings are zero-filled
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_huge(layout.size(), layout.align()) {
            // SAFETY: `block` is a mapping of exactly this size made by `reserve`.
            unsafe { libc::munmap(block.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(block, layout) }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if !is_huge(layout.size(), align) && !is_huge(new_size, align) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(block, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` with this alignment is a
        // valid layout size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: a non-zero size (at least one of the two sizes is HUGE or
        // the caller's was valid), same alignment.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes
            // and distinct; the old block is freed with its own layout.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_reservation_succeeds_and_is_usable() {
        let allocator = Allocator;
        // Far more than this machine's memory: only address space is taken.
        let layout = Layout::from_size_align(200 << 30, 8).expect("layout");
        // SAFETY: non-zero size; freed below with the same layout.
        unsafe {
            let block = allocator.alloc(layout);
            assert!(!block.is_null(), "the reservation succeeds");
            block.write(7);
            assert_eq!(block.read(), 7);
            allocator.dealloc(block, layout);
        }
    }

    #[test]
    fn blocks_move_between_the_two_paths_on_realloc() {
        let allocator = Allocator;
        let small = Layout::from_size_align(64, 8).expect("layout");
        // SAFETY: valid layouts; each block is freed once with its layout.
        unsafe {
            let block = allocator.alloc(small);
            block.write_bytes(0xab, 64);
            let grown = allocator.realloc(block, small, HUGE);
            assert!(!grown.is_null());
            assert_eq!(grown.add(63).read(), 0xab);
            let huge = Layout::from_size_align(HUGE, 8).expect("layout");
            let shrunk = allocator.realloc(grown, huge, 32);
            assert_eq!(shrunk.add(31).read(), 0xab);
            allocator.dealloc(shrunk, Layout::from_size_align(32, 8).expect("layout"));
        }
    }
}
