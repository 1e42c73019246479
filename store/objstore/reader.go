package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// ExactReader passes through exactly size bytes of r and fails the read if r
// ends early or holds more, or ctx ends, so a backend that streams it never
// completes an upload of the wrong length.
type ExactReader struct {
	ctx       context.Context
	r         io.Reader
	size      int64
	remaining int64
	probed    bool  // the check for extra data was done
	err       error // first failure, kept for the caller
}

// Stores use it to honour Put's all-or-nothing contract.
func NewExactReader(ctx context.Context, r io.Reader, size int64) *ExactReader {
	return &ExactReader{ctx: ctx, r: r, size: size, remaining: size}
}

func (e *ExactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func (e *ExactReader) read(p []byte) (int, error) {
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	if e.remaining == 0 {
		if !e.probed { // size 0
			e.probed = true
			if err := e.probeEOF(); err != io.EOF {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	// On any failure the bytes of this call are withheld (n = 0), so the
	// consumer never receives a complete object along with the error.
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	if err == io.EOF {
		if e.remaining > 0 {
			return 0, fmt.Errorf("%w: reader ended after %d of %d bytes", ErrSizeMismatch, e.size-e.remaining, e.size)
		}
		err = nil
	}
	if err != nil {
		return 0, fmt.Errorf("read object data: %w", err)
	}
	if e.remaining == 0 {
		// Check for extra data before handing over the last bytes, and
		// withhold them on failure: a consumer that stops at size bytes
		// (an HTTP body of known length) would otherwise have sent the
		// whole object before seeing the error.
		e.probed = true
		if err := e.probeEOF(); err != io.EOF {
			return 0, err
		}
	}
	return n, nil
}

// probeEOF checks that the source really is exhausted once size bytes have
// been read.
func (e *ExactReader) probeEOF() error {
	var b [1]byte
	for range 100 { // a reader may legally return 0, nil; don't spin forever
		n, err := e.r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("%w: reader holds more than %d bytes", ErrSizeMismatch, e.size)
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("read object data: %w", err)
		}
	}
	return fmt.Errorf("read object data: %w", io.ErrNoProgress)
}

// ChunkReader is a reader that can also hand out its data a chunk at a
// time, in buffers of its own, so a store writes them on without copying
// them into a buffer of its own first (the server's upload stream: one
// chunk per received message). A consumer uses either Read or NextChunk
// (ExactReader.WriteTo uses NextChunk).
type ChunkReader interface {
	io.Reader
	// NextChunk returns the next data, at least one byte, or io.EOF at
	// the end, or another error. The chunk is the reader's: it stays
	// valid until a later call returns another chunk, or the reader is
	// done with (a call that ends in an error leaves it valid).
	NextChunk() ([]byte, error)
}

// WriteTo implements io.WriterTo, so io.Copy (rclone's local backend)
// writes a ChunkReader's chunks through whole, one Write each, with the
// checks of Read: never more than size bytes, and the last chunk only
// once the source is known to end there. Other sources are copied through
// Read as io.Copy would.
func (e *ExactReader) WriteTo(w io.Writer) (int64, error) {
	cr, ok := e.r.(ChunkReader)
	if !ok || e.remaining != e.size {
		return io.Copy(w, readerOnly{e})
	}
	var total int64
	for {
		if e.err != nil {
			return total, e.err
		}
		b, err := e.nextChunk(cr)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			e.err = err
			return total, err
		}
		n, err := w.Write(b)
		total += int64(n)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err // the writer's failure, not a verdict on the stream
		}
	}
}

// nextChunk is read for chunks.
func (e *ExactReader) nextChunk(cr ChunkReader) ([]byte, error) {
	if err := e.ctx.Err(); err != nil {
		return nil, err
	}
	if e.remaining == 0 {
		if !e.probed { // size 0
			e.probed = true
			if err := probeChunkEOF(cr, e.size); err != io.EOF {
				return nil, err
			}
		}
		return nil, io.EOF
	}
	b, err := cr.NextChunk()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: reader ended after %d of %d bytes", ErrSizeMismatch, e.size-e.remaining, e.size)
	}
	if err != nil {
		return nil, fmt.Errorf("read object data: %w", err)
	}
	if int64(len(b)) > e.remaining {
		return nil, fmt.Errorf("%w: reader holds more than %d bytes", ErrSizeMismatch, e.size)
	}
	e.remaining -= int64(len(b))
	if e.remaining == 0 {
		// As in read: the last chunk only once the source has ended.
		e.probed = true
		if err := probeChunkEOF(cr, e.size); err != io.EOF {
			return nil, err
		}
	}
	return b, nil
}

func probeChunkEOF(cr ChunkReader, size int64) error {
	_, err := cr.NextChunk()
	switch {
	case err == io.EOF:
		return io.EOF
	case err != nil:
		return fmt.Errorf("read object data: %w", err)
	}
	return fmt.Errorf("%w: reader holds more than %d bytes", ErrSizeMismatch, size)
}

// readerOnly hides WriteTo, so io.Copy reads.
type readerOnly struct{ io.Reader }

// CheckRange validates off/length against an object of the given size and
// returns the resolved length.
func CheckRange(name string, size, off, length int64) (int64, error) {
	if off < 0 || off > size {
		return 0, fmt.Errorf("get %s [%d,+%d) of %d bytes: %w", name, off, length, size, ErrOutOfRange)
	}
	if length < 0 {
		return size - off, nil
	}
	if length > size-off {
		return 0, fmt.Errorf("get %s [%d,+%d) of %d bytes: %w", name, off, length, size, ErrOutOfRange)
	}
	return length, nil
}

// Err returns the reader's own verdict on the stream (too short, too long,
// failed, cancelled), which a backend may have flattened into a transport
// error.
func (e *ExactReader) Err() error { return e.err }

// BytesReader reads a byte slice and also offers the slice itself, so a
// store that needs the whole object in memory (the gRPC pack upload) can
// skip copying a 16 MiB pack. A GetRange that returns one hands the slice
// over: the caller may keep and modify it (the chunk fetch decrypts it in
// place).
type BytesReader struct {
	*bytes.Reader
	b []byte
}

// NewBytesReader returns a reader of b.
func NewBytesReader(b []byte) *BytesReader { return &BytesReader{Reader: bytes.NewReader(b), b: b} }

// Close does nothing; it makes a BytesReader a GetRange result.
func (r *BytesReader) Close() error { return nil }

// Unread returns the whole slice if nothing was read yet, else nil.
func (r *BytesReader) Unread() []byte {
	if r.Len() != len(r.b) {
		return nil
	}
	return r.b
}

// PiecesReader reads byte slices one after the other (net.Buffers without
// consuming them) and also offers the slices themselves, so a store that
// sends an object as messages (the gRPC pack upload) can copy each byte
// once, into the message, instead of first joining the pieces.
type PiecesReader struct {
	pieces [][]byte
	i, off int // next byte: pieces[i][off]
	read   bool
}

// NewPiecesReader returns a reader of the pieces joined.
func NewPiecesReader(pieces [][]byte) *PiecesReader { return &PiecesReader{pieces: pieces} }

// Read implements io.Reader.
func (r *PiecesReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.i < len(r.pieces) {
		c := copy(p[n:], r.pieces[r.i][r.off:])
		n += c
		r.off += c
		if r.off == len(r.pieces[r.i]) {
			r.i, r.off = r.i+1, 0
		}
	}
	if n > 0 {
		r.read = true
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Unread returns the pieces if nothing was read yet, else nil.
func (r *PiecesReader) Unread() [][]byte {
	if r.read {
		return nil
	}
	return r.pieces
}
