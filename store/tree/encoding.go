package tree

import (
	"encoding/binary"
	"fmt"
)

// writer appends the primitives of the encoding.
type writer struct{ b []byte }

func (w *writer) byte(c byte)      { w.b = append(w.b, c) }
func (w *writer) raw(p []byte)     { w.b = append(w.b, p...) }
func (w *writer) uvarint(x uint64) { w.b = binary.AppendUvarint(w.b, x) }
func (w *writer) varint(x int64)   { w.b = binary.AppendVarint(w.b, x) }
func (w *writer) string(s string)  { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }
func (w *writer) bytes(p []byte)   { w.uvarint(uint64(len(p))); w.b = append(w.b, p...) }

// reader parses the primitives with a sticky error: after the first failure
// every call returns zero values, and the caller checks err once per entry.
// Strings are cut from one copy of the whole input, so decoding a tree does
// not allocate per name.
type reader struct {
	b   []byte
	s   string // the same bytes as b
	off int
	err error
}

func newReader(b []byte) *reader { return &reader{b: b, s: string(b)} }

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: at byte %d: %s", ErrInvalid, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) read(dst []byte) {
	if r.err != nil {
		return
	}
	if r.remaining() < len(dst) {
		r.fail("truncated")
		return
	}
	r.off += copy(dst, r.b[r.off:])
}

// uvarint reads a minimally encoded uvarint: one value, one encoding, so the
// decoder accepts exactly what Encode produces.
func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 || (k > 1 && r.b[r.off+k-1] == 0) {
		r.fail("bad uvarint")
		return 0
	}
	r.off += k
	return x
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, k := binary.Varint(r.b[r.off:])
	if k <= 0 || (k > 1 && r.b[r.off+k-1] == 0) {
		r.fail("bad varint")
		return 0
	}
	r.off += k
	return x
}

func (r *reader) uvarintMax(limit uint64) uint64 {
	x := r.uvarint()
	if x > limit {
		r.fail("value %d exceeds %d", x, limit)
		return 0
	}
	return x
}

// count reads an element count and rejects one that the rest of the input
// cannot hold at minLen bytes per element, so a declared count can never
// make us allocate more than the input's size.
func (r *reader) count(minLen int) int {
	x := r.uvarint()
	if x > uint64(r.remaining()/minLen) {
		r.fail("count %d exceeds the %d bytes left", x, r.remaining())
		return 0
	}
	return int(x)
}

func (r *reader) length(limit int) int {
	n := r.uvarint()
	if n > uint64(limit) || n > uint64(r.remaining()) {
		r.fail("length %d exceeds limit %d or the %d bytes left", n, limit, r.remaining())
		return 0
	}
	return int(n)
}

func (r *reader) string(limit int) string {
	n := r.length(limit)
	if r.err != nil {
		return ""
	}
	s := r.s[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) bytes(limit int) []byte {
	n := r.length(limit)
	if r.err != nil || n == 0 {
		return nil
	}
	p := append([]byte(nil), r.b[r.off:r.off+n]...)
	r.off += n
	return p
}

// end reports the first error, or trailing bytes after a complete value.
func (r *reader) end() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", r.remaining())
	}
	return r.err
}
