package node

import (
	"io"
)

// backing holds an open node's local content: a staging file, or memory
// for small files (inline content, stored in the node's row at flush).
type backing interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// InlineMax is the largest content kept inline in the database instead of
// a staging file. Creating a file costs more than the whole row update
// (about 300 µs on ext4 here), and most files in source trees are small.
const InlineMax = 128 << 10

// writePiece is the most a staging file write hands the kernel at once.
// Page-cache writes of 1 MiB (FUSE's largest) cost this VM's kernel
// twice the CPU of the same bytes in 32 KiB writes (large folios, which
// the host faults in again); the extra system calls cost little anywhere.
const writePiece = 32 << 10

// writeAtPieces writes p at off in writePiece pieces.
func writeAtPieces(w io.WriterAt, p []byte, off int64) (int, error) {
	var done int
	for done < len(p) {
		end := min(done+writePiece, len(p))
		n, err := w.WriteAt(p[done:end], off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// memBacking is inline content.
type memBacking struct{ data []byte }

func (m *memBacking) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memBacking) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.grow(end)
	}
	return copy(m.data[off:], p), nil
}

func (m *memBacking) grow(size int64) {
	if size <= int64(cap(m.data)) {
		old := len(m.data)
		m.data = m.data[:size]
		clear(m.data[old:])
		return
	}
	d := make([]byte, size, max(size, 2*int64(cap(m.data))))
	copy(d, m.data)
	m.data = d
}

func (m *memBacking) Truncate(size int64) error {
	if size <= int64(len(m.data)) {
		m.data = m.data[:size]
		return nil
	}
	m.grow(size)
	return nil
}

func (m *memBacking) Sync() error  { return nil }
func (m *memBacking) Close() error { return nil }
