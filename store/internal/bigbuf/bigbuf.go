// Package bigbuf allocates the write pipeline's large buffers (pack
// buffers, chunk buffers, the chunker's window) so that touching them is
// cheap.
//
// A first touch of fresh memory costs a page fault per 4 KiB page; on the
// VMs we measure on a fault costs 10-20 µs, so filling a 16 MiB pack
// buffer cost 40-80 ms in faults alone. On Linux the buffers are marked
// for transparent huge pages (madvise MADV_HUGEPAGE; honoured where THP is
// "madvise" or "always"), so they fault in 2 MiB at a time. Elsewhere, or
// if the kernel refuses, they are ordinary slices.
package bigbuf

// MinHuge is the smallest capacity worth marking: a buffer needs an
// aligned 2 MiB region inside it for a huge page.
const MinHuge = 4 << 20

// Make returns make([]byte, length, capacity), marked for huge pages when
// capacity is at least MinHuge. The memory is an ordinary Go slice.
func Make(length, capacity int) []byte {
	b := make([]byte, length, capacity)
	if capacity >= MinHuge {
		adviseHuge(b[:capacity])
	}
	return b
}
