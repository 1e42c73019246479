// Copyright 2026 the AnySync Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// AnySync patch: how readers wait for the kernel's next request.
//
// A single-threaded client (tar, git, cp -r) sends one request, waits for
// the reply and sends the next some microseconds later. A reader blocked
// in read(2) has to be woken for each of them: on a virtual machine whose
// idle CPUs halt, that wake-up (an inter-processor interrupt to a halted
// vCPU) costs more than the request itself. So one reader at a time waits
// on the device, and it first polls it without blocking for a short
// window after each request, catching the next one without a wake-up; the
// other readers wait on a mutex, in user space, so a request wakes no
// more than one of them. The window adapts like the kernel's haltpoll:
// it grows while requests keep arriving just after it ends and shrinks
// while the device stays idle, so an idle mount does not spin.

package fuse

import (
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxSpin is the longest a reader polls the device before blocking.
	maxSpin = 100 * time.Microsecond
	// minSpin is where a growing window starts.
	minSpin = 10 * time.Microsecond
)

type requestWaiter struct {
	mu   sync.Mutex    // held by the one reader waiting on the device
	spin time.Duration // the current window, under mu
}

// init makes the device non-blocking, so reads can poll it.
func (w *requestWaiter) init(fd int) error {
	w.spin = maxSpin
	return syscall.SetNonblock(fd, true)
}

// read reads the next request, polling for up to the window before
// blocking in poll(2).
func (w *requestWaiter) read(fd int, dest []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	for {
		n, err := syscall.Read(fd, dest)
		if err != syscall.EAGAIN {
			return n, err
		}
		if time.Since(start) < w.spin {
			continue
		}
		break
	}
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return 0, err
		}
		n, err := syscall.Read(fd, dest)
		if err == syscall.EAGAIN {
			continue // another reader took it (a reader outside mu: INIT)
		}
		w.adapt(time.Since(start))
		return n, err
	}
}

// adapt resizes the window after a wait that outlasted it: a request
// that came soon after the window ended asks for a longer one; a long
// idle spell, a shorter one.
func (w *requestWaiter) adapt(waited time.Duration) {
	switch {
	case waited < maxSpin:
		w.spin = min(max(2*w.spin, minSpin), maxSpin)
	case waited > 10*maxSpin:
		w.spin /= 2
		if w.spin < minSpin {
			w.spin = 0
		}
	}
}
