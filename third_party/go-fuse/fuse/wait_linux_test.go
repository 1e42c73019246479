// Copyright 2026 the AnySync Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"os"
	"sync"
	"testing"
	"time"
)

// pipeWaiter returns a waiter on the read end of a pipe, which polls and
// reads like the FUSE device: EAGAIN when empty, readable when not.
func pipeWaiter(t *testing.T) (*requestWaiter, int, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	fd := int(r.Fd())
	var wt requestWaiter
	if err := wt.init(fd); err != nil {
		t.Fatal(err)
	}
	return &wt, fd, w
}

func TestWaiterReadsWhatArrives(t *testing.T) {
	wt, fd, w := pipeWaiter(t)
	buf := make([]byte, 16)
	// Already there: caught by the first read.
	w.Write([]byte("one"))
	if n, err := wt.read(fd, buf); err != nil || string(buf[:n]) != "one" {
		t.Fatalf("read = %q, %v", buf[:n], err)
	}
	// Arriving long after the window: the reader blocks in poll(2) and
	// returns it.
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte("two"))
	}()
	if n, err := wt.read(fd, buf); err != nil || string(buf[:n]) != "two" {
		t.Fatalf("read = %q, %v", buf[:n], err)
	}
	// The writer gone: the end of the stream, as an unmounted device's
	// error ends the reader's loop.
	w.Close()
	if n, err := wt.read(fd, buf); err != nil || n != 0 {
		t.Fatalf("read after close = %d, %v", n, err)
	}
}

func TestWaiterConcurrentReaders(t *testing.T) {
	wt, fd, w := pipeWaiter(t)
	const readers = 4
	got := make(chan string, readers)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1)
			n, err := wt.read(fd, buf)
			if err != nil {
				t.Error(err)
				return
			}
			got <- string(buf[:n])
		}()
	}
	for _, m := range []string{"a", "b", "c", "d"} {
		time.Sleep(time.Millisecond)
		w.Write([]byte(m))
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for m := range got {
		seen[m] = true
	}
	if len(seen) != readers {
		t.Fatalf("each request goes to one reader: got %v", seen)
	}
}

func TestWaiterWindowAdapts(t *testing.T) {
	var wt requestWaiter
	wt.spin = maxSpin
	// Idle spells shrink the window until the reader no longer spins.
	for range 10 {
		wt.adapt(time.Second)
	}
	if wt.spin != 0 {
		t.Fatalf("after idle spells the window is %v, want 0", wt.spin)
	}
	// Requests that come just after the window grow it back, up to the
	// limit.
	wt.adapt(20 * time.Microsecond)
	if wt.spin != minSpin {
		t.Fatalf("after a short wait the window is %v, want %v", wt.spin, minSpin)
	}
	for range 10 {
		wt.adapt(maxSpin / 2)
	}
	if wt.spin != maxSpin {
		t.Fatalf("after short waits the window is %v, want %v", wt.spin, maxSpin)
	}
	// A wait between the two leaves it as it is.
	wt.adapt(3 * maxSpin)
	if wt.spin != maxSpin {
		t.Fatalf("after a middling wait the window is %v, want %v", wt.spin, maxSpin)
	}
}
