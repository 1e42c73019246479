// Copyright 2026 the AnySync Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

//go:build !linux

package fuse

import "syscall"

// requestWaiter blocks in read(2) (see wait_linux.go for Linux).
type requestWaiter struct{}

func (w *requestWaiter) init(fd int) error { return nil }

func (w *requestWaiter) read(fd int, dest []byte) (int, error) {
	return syscall.Read(fd, dest)
}
