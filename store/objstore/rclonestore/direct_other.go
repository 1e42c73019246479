//go:build !linux

package rclonestore

import (
	"errors"
	"io"
)

var errNoDirect = errors.New("direct I/O not supported")

// writeDirect is Linux-only: elsewhere uploads take the page cache.
func writeDirect(string, io.Reader, int64) error { return errNoDirect }

func readDirect(string, int64, int64) (io.ReadCloser, error) { return nil, errNoDirect }
