package objstore

import (
	"context"
	"fmt"
	"io"
)

// exactReader passes through exactly size bytes of r and fails the read if r
// ends early or holds more, or ctx ends, so a backend that streams it never
// completes an upload of the wrong length.
type exactReader struct {
	ctx       context.Context
	r         io.Reader
	size      int64
	remaining int64
	probed    bool  // the check for extra data was done
	err       error // first failure, kept for the caller
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	return &exactReader{ctx: ctx, r: r, size: size, remaining: size}
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func (e *exactReader) read(p []byte) (int, error) {
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
func (e *exactReader) probeEOF() error {
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

// checkRange validates off/length against an object of the given size and
// returns the resolved length.
func checkRange(name string, size, off, length int64) (int64, error) {
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

// lengthReader fails with io.ErrUnexpectedEOF if the backend's stream ends
// before want bytes, so a truncated response is never taken for data.
type lengthReader struct {
	rc   io.ReadCloser
	want int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.want <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.want {
		p = p[:l.want]
	}
	n, err := l.rc.Read(p)
	l.want -= int64(n)
	if err == io.EOF && l.want > 0 {
		return n, io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		return n, nil
	}
	return n, err
}

func (l *lengthReader) Close() error { return l.rc.Close() }

// shardPath is where an object lives inside a backend: the last two
// characters of the name as a folder, so no folder holds more than a small
// fraction of a huge account. The last, not the first: callers may prefix
// names with an account ID, which would put a whole account in one folder.
func shardPath(name string) string {
	return shardOf(name) + "/" + name
}

func shardOf(name string) string {
	return name[max(0, len(name)-2):]
}

// nameFromPath inverts shardPath; ok is false for anything else found in the
// backend (temporary files, foreign files), which listings skip.
func nameFromPath(p string) (name string, ok bool) {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		dir, name := p[:i], p[i+1:]
		if ValidateName(name) != nil || dir != shardOf(name) {
			return "", false
		}
		return name, true
	}
	return "", false
}
