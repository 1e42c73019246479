//go:build !linux

package main

import "errors"

// detach: the drive benchmarks run on Linux only.
func detach(string) error { return errors.ErrUnsupported }
