package rclonestore

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"

	"github.com/anysync/anysync/store/internal/directio"
)

// directBuf is the size of one direct write.
const directBuf = 2 << 20

var directBufs = sync.Pool{New: func() any {
	b := directio.Buf(directBuf)
	return &b
}}

// writeDirect writes size bytes of in to a new file at path with O_DIRECT,
// then fdatasyncs it. The data goes from reused buffers to the disk, so a
// pack costs neither the page cache's new pages and copy nor their
// writeback and drop (syncLocal); the fdatasync that makes it durable then
// has only the file's metadata left to write. On failure the file is
// removed. See docs/protocol.md.
func writeDirect(path string, in io.Reader, size int64) (err error) {
	f, err := directio.Open(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	// Two buffers: one fills from in while the other goes to the disk, so
	// a Put takes about as long as the slower of the two, not their sum.
	type block struct {
		buf *[]byte
		off int64
		n   int
	}
	full := make(chan block, 1)
	free := make(chan *[]byte, 2)
	free <- directBufs.Get().(*[]byte)
	free <- directBufs.Get().(*[]byte)
	written := make(chan error, 1)
	var failed atomic.Bool // the reader stops early on a failed write
	go func() {
		var err error
		for b := range full {
			if err == nil {
				// The last block is padded, and the file cut back to size.
				w := int(directio.Up(int64(b.n)))
				clear((*b.buf)[b.n:w])
				if _, werr := f.WriteAt((*b.buf)[:w], b.off); werr != nil {
					err = fmt.Errorf("write %s: %w", path, werr)
					failed.Store(true)
				}
			}
			free <- b.buf
		}
		written <- err
	}()
	var off int64
	var rerr error
	for off < size && !failed.Load() {
		bp := <-free
		n := int(min(int64(len(*bp)), size-off))
		if _, rerr = io.ReadFull(in, (*bp)[:n]); rerr != nil {
			free <- bp
			break
		}
		full <- block{bp, off, n}
		off += int64(n)
	}
	close(full)
	werr := <-written
	directBufs.Put(<-free)
	directBufs.Put(<-free)
	if err := cmp.Or(rerr, werr); err != nil {
		return err
	}
	if size == 0 {
		if _, err := in.Read(nil); err != io.EOF {
			return fmt.Errorf("read object data: %w", err)
		}
	}
	if size%directio.Align != 0 {
		if err := f.Truncate(size); err != nil {
			return err
		}
	}
	return directio.Datasync(f)
}

// readBufs holds the aligned buffers of direct reads, by power-of-two
// capacity from 64 KiB (readBufs[0]) up.
var readBufs [10]sync.Pool

func readBuf(n int) *[]byte {
	c := max(bits.Len(uint(n-1)), 16) - 16
	if c >= len(readBufs) {
		b := directio.Buf(n)
		return &b
	}
	if bp, ok := readBufs[c].Get().(*[]byte); ok {
		return bp
	}
	b := directio.Buf(1 << (c + 16))
	return &b
}

func releaseReadBuf(bp *[]byte) {
	if c := bits.Len(uint(cap(*bp)-1)) - 16; c >= 0 && c < len(readBufs) && cap(*bp) == 1<<(c+16) {
		readBufs[c].Put(bp)
	}
}

// directRange is a range read whole with O_DIRECT; Close recycles its
// buffer.
type directRange struct {
	bytes.Reader
	buf *[]byte
}

func (d *directRange) Close() error {
	if d.buf != nil {
		releaseReadBuf(d.buf)
		d.buf = nil
	}
	return nil
}

// readDirect reads [off, off+n) of the file at path with O_DIRECT: the
// disk's data goes to a reused buffer, not into new page-cache pages and
// then copied (docs/protocol.md). A file shorter than the range is an
// io.ErrUnexpectedEOF; a file system that refuses O_DIRECT,
// directio.ErrUnsupported.
func readDirect(path string, off, n int64) (io.ReadCloser, error) {
	f, err := directio.Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start, end := directio.Down(off), directio.Up(off+n)
	bp := readBuf(int(end - start))
	buf := (*bp)[:end-start]
	want := int(off + n - start)
	for done := 0; done < want; {
		k, err := f.ReadAt(buf[done:], start+int64(done))
		done += k
		if err == io.EOF && done < want {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && done < want {
			releaseReadBuf(bp)
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	d := &directRange{buf: bp}
	d.Reset(buf[off-start : off-start+n])
	return d, nil
}
