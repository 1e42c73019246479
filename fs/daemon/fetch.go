package daemon

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/anysync/anysync/store/objstore"
)

// fetchTimeout bounds one download for a read, waiting for a slot
// included. Offline (or with a server that stopped answering), a read of
// data that is not cached fails with EIO after this long instead of
// hanging the application.
const fetchTimeout = 20 * time.Second

// maxFetches bounds the downloads for reads in flight at once. The
// kernel's read-ahead and the file reader's own keep more chunks wanted
// than that during a sequential read; beyond a few in flight, more only
// hold more memory (each is a chunk in gRPC's buffers, then in ours)
// and compete for the CPU with the server on a small machine, without
// moving more bytes: on loopback one 1 MiB range takes about 1.5 ms, so
// eight in flight sustain several GB/s, and on a WAN link eight average
// chunks in flight keep 8 MiB on the wire.
const maxFetches = 8

// boundedReads is the server's pack store with a deadline on downloads
// (it reads a whole range before returning, so the deadline can end with
// the call) and at most cap(slots) of them at once.
// Uploads keep the client's own (longer) deadlines and retries: they run in
// the background, where waiting costs no one.
type boundedReads struct {
	objstore.ObjectStore
	timeout time.Duration
	slots   chan struct{}
}

func newBoundedReads(s objstore.ObjectStore, timeout time.Duration, n int) boundedReads {
	return boundedReads{ObjectStore: s, timeout: timeout, slots: make(chan struct{}, n)}
}

func (b boundedReads) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	offline := func(err error) error {
		return fmt.Errorf("download from %s: no answer from the server within %v (offline?): %w", name, b.timeout, err)
	}
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, offline(ctx.Err())
	}
	defer func() { <-b.slots }()
	rc, err := b.ObjectStore.GetRange(ctx, name, off, length)
	if err != nil {
		if ctx.Err() != nil {
			return nil, offline(err)
		}
		return nil, err
	}
	return rc, nil
}
