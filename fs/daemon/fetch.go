package daemon

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/anysync/anysync/store/objstore"
)

// fetchTimeout bounds one download for a read. Offline (or with a server
// that stopped answering), a read of data that is not cached fails with
// EIO after this long instead of hanging the application.
const fetchTimeout = 20 * time.Second

// boundedReads is the server's pack store with a deadline on downloads
// (it reads a whole range before returning, so the deadline can end with
// the call).
// Uploads keep the client's own (longer) deadlines and retries: they run in
// the background, where waiting costs no one.
type boundedReads struct {
	objstore.ObjectStore
	timeout time.Duration
}

func (b boundedReads) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	rc, err := b.ObjectStore.GetRange(ctx, name, off, length)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("download from %s: no answer from the server within %v (offline?): %w", name, b.timeout, err)
		}
		return nil, err
	}
	return rc, nil
}
