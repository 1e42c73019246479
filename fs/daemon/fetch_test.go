package daemon

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anysync/anysync/store/objstore"
)

// gateStore's GetRange blocks until release is closed, counting how many
// run at once.
type gateStore struct {
	objstore.ObjectStore
	release chan struct{}

	mu            sync.Mutex
	running, peak int
	started       chan struct{}
}

func (g *gateStore) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	g.mu.Lock()
	g.running++
	g.peak = max(g.peak, g.running)
	g.mu.Unlock()
	g.started <- struct{}{}
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	select {
	case <-g.release:
		return io.NopCloser(strings.NewReader("data")), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestBoundedReadsCapsDownloads(t *testing.T) {
	g := &gateStore{release: make(chan struct{}), started: make(chan struct{}, 100)}
	b := newBoundedReads(g, time.Minute, 3)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := b.GetRange(context.Background(), "p", 0, 4)
			if err == nil {
				_ = rc.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		<-g.started
	}
	select {
	case <-g.started:
		t.Fatal("a fourth download started while three were running")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if g.peak != 3 {
		t.Fatalf("%d downloads ran at once, want 3", g.peak)
	}
}

// A read waiting for a slot still fails within the deadline, as one whose
// download hangs does: offline reads end with EIO, not a hang.
func TestBoundedReadsDeadlineCoversTheWait(t *testing.T) {
	g := &gateStore{release: make(chan struct{}), started: make(chan struct{}, 100)}
	b := newBoundedReads(g, 100*time.Millisecond, 1)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := b.GetRange(context.Background(), "p", 0, 4)
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "offline?") {
			t.Fatalf("got %v, want the offline deadline error", err)
		}
	}
	if g.peak != 1 {
		t.Fatalf("%d downloads ran at once, want 1", g.peak)
	}
}
