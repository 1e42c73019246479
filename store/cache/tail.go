package cache

import (
	"fmt"
	"os"
	"sync"

	"github.com/anysync/anysync/store/internal/directio"
)

const (
	// tailBuf is the size of one write to the file.
	tailBuf = 2 << 20
	// tailBufs buffers per tail: one filling, the others being written.
	tailBufs = 3
)

// directTail appends to the current segment through buffers that go to
// the file with O_DIRECT in whole, aligned writes: a cached blob costs the
// kernel no page-cache pages (on a VM that hands free memory back to its
// host, a host fault each) nor their writeback (docs/cache.md). A full
// buffer is written by the tail's own goroutine, so appends wait for the
// disk only when every buffer is full. The file's bytes from the oldest
// buffer being written on are in memory, and readers take them from
// there; the file holds everything before. One appender at a time (the
// cache's wmu).
type directTail struct {
	f    *os.File // O_DIRECT, write-only
	todo chan tailBlock
	free chan []byte
	done chan struct{} // closed when the writer has stopped

	mu      sync.Mutex
	drained *sync.Cond  // signalled when a write ends
	queue   []tailBlock // handed to the writer, oldest first
	cur     []byte      // the buffer filling, nil while waiting for one
	base    int64       // file offset of cur[0], aligned
	n       int         // bytes in cur
	err     error       // the writer's first failure
}

// tailBlock is a full buffer and where it goes.
type tailBlock struct {
	b   []byte
	off int64
}

// newDirectTail starts appending at base, an aligned offset of f's file.
func newDirectTail(f *os.File, base int64) *directTail {
	t := &directTail{f: f, todo: make(chan tailBlock, tailBufs), free: make(chan []byte, tailBufs),
		done: make(chan struct{}), cur: directio.Buf(tailBuf), base: base}
	t.drained = sync.NewCond(&t.mu)
	for range tailBufs - 1 {
		t.free <- directio.Buf(tailBuf)
	}
	go t.write()
	return t
}

func (t *directTail) write() {
	defer close(t.done)
	for blk := range t.todo {
		t.mu.Lock()
		failed := t.err != nil
		t.mu.Unlock()
		var err error
		if !failed {
			_, err = t.f.WriteAt(blk.b, blk.off)
		}
		t.mu.Lock()
		t.queue = t.queue[1:]
		if err != nil && t.err == nil {
			t.err = fmt.Errorf("write segment: %w", err)
		}
		t.drained.Broadcast()
		t.mu.Unlock()
		t.free <- blk.b
	}
}

// append adds bytes at the end, handing each buffer that fills to the
// writer. After a failed write it fails: the bytes are not in the file.
func (t *directTail) append(p []byte) error {
	for len(p) > 0 {
		t.mu.Lock()
		if t.err != nil {
			err := t.err
			t.mu.Unlock()
			return err
		}
		k := copy(t.cur[t.n:], p)
		t.n += k
		p = p[k:]
		var blk tailBlock
		full := t.n == len(t.cur)
		if full {
			blk = tailBlock{t.cur, t.base}
			t.queue = append(t.queue, blk)
			t.base += int64(t.n)
			t.cur, t.n = nil, 0
		}
		t.mu.Unlock()
		if full {
			t.todo <- blk // never blocks: at most tailBufs are out
			b := <-t.free
			t.mu.Lock()
			t.cur = b
			t.mu.Unlock()
		}
	}
	return nil
}

// readAt copies the part of [off, off+len(p)) that is in memory into the
// matching part of p, and returns how much of p's start is in the file.
func (t *directTail) readAt(p []byte, off int64) (fromFile int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return 0, t.err
	}
	mem := t.base // the first byte not in the file
	if len(t.queue) > 0 {
		mem = t.queue[0].off
	}
	end := off + int64(len(p))
	if end <= mem {
		return len(p), nil
	}
	cp := func(b []byte, at int64) {
		lo, hi := max(off, at), min(end, at+int64(len(b)))
		if lo < hi {
			copy(p[lo-off:hi-off], b[lo-at:hi-at])
		}
	}
	for _, blk := range t.queue {
		cp(blk.b, blk.off)
	}
	cp(t.cur[:t.n], t.base)
	return int(max(mem-off, 0)), nil
}

// flushPadded waits for the writer, then writes what is left, padded to a
// block, and cuts the file back to its size. Appends may follow: the
// padded block is written again whole.
func (t *directTail) flushPadded() error {
	t.mu.Lock()
	for len(t.queue) > 0 {
		t.drained.Wait()
	}
	err, n := t.err, t.n
	t.mu.Unlock()
	if err != nil || n == 0 {
		return err
	}
	w := int(directio.Up(int64(n)))
	clear(t.cur[n:w])
	if _, err := t.f.WriteAt(t.cur[:w], t.base); err != nil {
		return fmt.Errorf("write segment: %w", err)
	}
	if err := t.f.Truncate(t.base + int64(n)); err != nil {
		return fmt.Errorf("cut segment: %w", err)
	}
	return nil
}

// finish writes everything out and stops: the segment is complete.
func (t *directTail) finish() error {
	err := t.flushPadded()
	t.stop()
	return err
}

// stop ends the writer and closes the file, dropping what was not written.
func (t *directTail) stop() {
	close(t.todo)
	<-t.done
	_ = t.f.Close()
}
