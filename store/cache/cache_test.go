package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anysync/anysync/crypto"
)

// blobs seals test blobs with the real blob cipher, so open really
// authenticates and a flipped bit on disk really fails.
type blobs struct {
	c *crypto.BlobCipher
}

func newBlobs(t testing.TB) *blobs {
	k, err := crypto.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	return &blobs{c: crypto.NewBlobCipher(k)}
}

// make returns a blob of n plaintext bytes derived from seed: its ID, plaintext and sealed form.
func (b *blobs) make(t testing.TB, seed string, n int) (crypto.ID, []byte, []byte) {
	t.Helper()
	plain := make([]byte, n)
	h := sha256.Sum256([]byte(seed))
	for i := range plain {
		plain[i] = h[i%len(h)] ^ byte(i>>5)
	}
	id := crypto.ID(sha256.Sum256(plain))
	sealed, err := b.c.Seal(nil, plain, id, crypto.BlobData)
	if err != nil {
		t.Fatal(err)
	}
	return id, plain, sealed
}

func (b *blobs) opener(id crypto.ID) func([]byte) ([]byte, error) {
	return func(sealed []byte) ([]byte, error) { return b.c.Open(nil, sealed, id, crypto.BlobData) }
}

// fetcher returns sealed and counts its calls.
type fetcher struct {
	calls  atomic.Int64
	sealed []byte
}

func (f *fetcher) fetch(context.Context) ([]byte, error) {
	f.calls.Add(1)
	return bytes.Clone(f.sealed), nil
}

func noFetch(t *testing.T) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		t.Error("fetch called for a cached blob")
		return nil, errors.New("unexpected fetch")
	}
}

func mustOpen(t testing.TB, dir string, opts Options) *Cache {
	t.Helper()
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustGet(t testing.TB, c *Cache, b *blobs, id crypto.ID, fetch func(context.Context) ([]byte, error), want []byte) {
	t.Helper()
	got, err := c.Get(context.Background(), id, fetch, b.opener(id))
	if err != nil {
		t.Fatalf("Get(%s): %v", id.Short(), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s) returned wrong plaintext", id.Short())
	}
}

func TestHitMiss(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "a", 1000)
	f := &fetcher{sealed: sealed}
	mustGet(t, c, b, id, f.fetch, plain)
	mustGet(t, c, b, id, f.fetch, plain)
	if n := f.calls.Load(); n != 1 {
		t.Errorf("fetch called %d times, want 1", n)
	}
	s := c.Stats()
	if s.Hits != 1 || s.Misses != 1 || s.Fetches != 1 || s.DiskHits != 0 {
		t.Errorf("stats = %+v, want 1 hit, 1 miss, 1 fetch", s)
	}
	if s.MemItems != 1 || s.MemBytes != 1000 || s.DiskItems != 1 || s.DiskBytes != int64(len(sealed)) {
		t.Errorf("tier sizes = %+v", s)
	}
	if !c.HasSealed(id) {
		t.Error("fetched blob not on disk")
	}
}

func TestMemTierEvictsLeastRecentlyUsedBytes(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 3000, DiskBytes: 1 << 20})
	ids := map[string]crypto.ID{}
	plains := map[string][]byte{}
	for _, name := range []string{"A", "B", "C", "D"} {
		id, plain, sealed := b.make(t, name, 1000)
		ids[name], plains[name] = id, plain
		f := &fetcher{sealed: sealed}
		mustGet(t, c, b, id, f.fetch, plain)
		if name == "C" {
			mustGet(t, c, b, ids["A"], noFetch(t), plains["A"]) // A is now newer than B
		}
	}
	// D pushed out the least recently used: B.
	before := c.Stats()
	mustGet(t, c, b, ids["A"], noFetch(t), plains["A"])
	mustGet(t, c, b, ids["C"], noFetch(t), plains["C"])
	mustGet(t, c, b, ids["D"], noFetch(t), plains["D"])
	if s := c.Stats(); s.Hits-before.Hits != 3 || s.DiskHits != before.DiskHits {
		t.Errorf("A, C, D should be in memory: %+v", s)
	}
	mustGet(t, c, b, ids["B"], noFetch(t), plains["B"])
	if s := c.Stats(); s.DiskHits-before.DiskHits != 1 {
		t.Errorf("B should have come from disk: %+v", s)
	}

	// Bounded in bytes: one 2500-byte blob pushes out all three others.
	id, plain, sealed := b.make(t, "E", 2500)
	mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)
	if s := c.Stats(); s.MemItems != 1 || s.MemBytes != 2500 {
		t.Errorf("after a 2500-byte blob: %d items, %d bytes; want 1, 2500", s.MemItems, s.MemBytes)
	}
	// A blob larger than the tier is served but not kept.
	id, plain, sealed = b.make(t, "F", 4000)
	mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)
	if s := c.Stats(); s.MemItems != 1 || s.MemBytes != 2500 {
		t.Errorf("after a blob larger than the tier: %d items, %d bytes", s.MemItems, s.MemBytes)
	}
}

func TestDiskTierEvictsLeastRecentlyUsed(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	_, _, probe := b.make(t, "probe", 1000)
	sz := int64(len(probe))
	c := mustOpen(t, dir, Options{MemBytes: 0, DiskBytes: 3 * sz})
	ids := map[string]crypto.ID{}
	for _, name := range []string{"A", "B", "C", "D"} {
		id, plain, sealed := b.make(t, name, 1000)
		ids[name] = id
		mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)
		if name == "C" {
			_, plainA, _ := b.make(t, "A", 1000)
			mustGet(t, c, b, ids["A"], noFetch(t), plainA) // disk hit: A newer than B
		}
	}
	for name, want := range map[string]bool{"A": true, "B": false, "C": true, "D": true} {
		if got := c.HasSealed(ids[name]); got != want {
			t.Errorf("HasSealed(%s) = %v, want %v", name, got, want)
		}
		_, err := os.Stat(c.blobPath(ids[name]))
		if exists := err == nil; exists != want {
			t.Errorf("file of %s exists = %v, want %v", name, exists, want)
		}
	}
	s := c.Stats()
	if s.DiskBytes != 3*sz || s.DiskItems != 3 || s.Evictions != 1 || s.MemItems != 0 {
		t.Errorf("stats = %+v", s)
	}

	// A smaller limit evicts at once, oldest first: C, then A.
	c.SetDiskLimit(sz)
	if c.HasSealed(ids["C"]) || c.HasSealed(ids["A"]) || !c.HasSealed(ids["D"]) {
		t.Error("SetDiskLimit did not evict the oldest blobs")
	}
}

func TestPinnedNeverEvicted(t *testing.T) {
	b := newBlobs(t)
	_, _, probe := b.make(t, "probe", 1000)
	sz := int64(len(probe))
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 2 * sz})
	idA, plainA, sealedA := b.make(t, "A", 1000)
	if err := c.Pin(idA); err != nil { // pinned before it is fetched
		t.Fatal(err)
	}
	mustGet(t, c, b, idA, (&fetcher{sealed: sealedA}).fetch, plainA)
	var others []crypto.ID
	for _, name := range []string{"B", "C", "D", "E"} {
		id, plain, sealed := b.make(t, name, 1000)
		others = append(others, id)
		mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)
	}
	if !c.HasSealed(idA) || !c.IsPinned(idA) {
		t.Fatal("pinned blob evicted")
	}
	s := c.Stats()
	if s.PinnedItems != 1 || s.PinnedBytes != sz || s.DiskItems != 2 || s.Pins != 1 || s.OverLimit() {
		t.Errorf("stats = %+v", s)
	}

	// Pinning more than the limit holds keeps everything pinned and shows
	// it; the unpinned blobs make way. D was evicted before being pinned:
	// it is pinned but absent until fetched again.
	idD, idE := others[2], others[3]
	if c.HasSealed(idD) || !c.HasSealed(idE) {
		t.Fatal("setup: want D evicted and E cached")
	}
	if err := c.Pin(idD, idE); err != nil {
		t.Fatal(err)
	}
	var pinned []crypto.ID
	for _, name := range []string{"F", "G"} {
		id, plain, sealed := b.make(t, name, 1000)
		pinned = append(pinned, id)
		if err := c.Pin(id); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)
	}
	s = c.Stats()
	if s.PinnedItems != 4 || s.DiskItems != 4 || s.Pins != 5 || !s.OverLimit() {
		t.Errorf("over limit: stats = %+v", s)
	}
	_, plainD, sealedD := b.make(t, "D", 1000)
	if !c.IsPinned(idD) || c.HasSealed(idD) {
		t.Error("D should be pinned and absent")
	}
	mustGet(t, c, b, idD, (&fetcher{sealed: sealedD}).fetch, plainD)
	for _, id := range append([]crypto.ID{idA, idD, idE}, pinned...) {
		if !c.HasSealed(id) {
			t.Errorf("pinned %s evicted", id.Short())
		}
	}
	if s := c.Stats(); s.DiskItems != 5 || s.PinnedBytes != 5*sz {
		t.Errorf("stats = %+v", s)
	}
	// Unpinning lets the cache shrink back to its limit.
	if err := c.Unpin(idA, idD, idE, pinned[0], pinned[1]); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.DiskBytes > 2*sz || s.PinnedItems != 0 || s.Pins != 0 {
		t.Errorf("after unpin: %+v", s)
	}
}

func TestRestartKeepsDiskEntriesOrderAndPins(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	_, _, probe := b.make(t, "probe", 1000)
	sz := int64(len(probe))
	c, err := Open(dir, Options{DiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]crypto.ID{}
	plains := map[string][]byte{}
	for _, name := range []string{"A", "B", "C", "D"} {
		id, plain, sealed := b.make(t, name, 1000)
		ids[name], plains[name] = id, plain
		mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)
	}
	if err := c.Pin(ids["A"], ids["B"]); err != nil {
		t.Fatal(err)
	}
	if err := c.Unpin(ids["A"]); err != nil {
		t.Fatal(err)
	}
	// Use C from disk so it is newer than D. (Reopen to bypass memory.)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = mustOpen(t, dir, Options{DiskBytes: 1 << 20})
	mustGet(t, c, b, ids["C"], noFetch(t), plains["C"])
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with room for two unpinned-or-pinned blobs besides B: the
	// oldest unpinned ones (A, then D) go.
	c = mustOpen(t, dir, Options{DiskBytes: 2 * sz})
	if !c.IsPinned(ids["B"]) || c.IsPinned(ids["A"]) {
		t.Errorf("pins after restart: A=%v B=%v, want false true", c.IsPinned(ids["A"]), c.IsPinned(ids["B"]))
	}
	for name, want := range map[string]bool{"A": false, "B": true, "C": true, "D": false} {
		if got := c.HasSealed(ids[name]); got != want {
			t.Errorf("after restart HasSealed(%s) = %v, want %v", name, got, want)
		}
	}
	mustGet(t, c, b, ids["B"], noFetch(t), plains["B"])
	mustGet(t, c, b, ids["C"], noFetch(t), plains["C"])
	if s := c.Stats(); s.DiskHits != 2 || s.Fetches != 0 || s.PinnedItems != 1 {
		t.Errorf("stats after restart = %+v", s)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	c := mustOpen(t, dir, Options{})
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the folder", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	c2.Close()
}

// The lock holds against another process too (the usual case: a second
// mount daemon on the same cache).
func TestLockedAgainstOtherProcess(t *testing.T) {
	if dir := os.Getenv("ANYSYNC_CACHE_LOCK_HELPER"); dir != "" {
		_, err := Open(dir, Options{})
		if errors.Is(err, ErrLocked) {
			os.Exit(3)
		}
		os.Exit(0)
	}
	if runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no subprocesses")
	}
	dir := t.TempDir()
	mustOpen(t, dir, Options{})
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedAgainstOtherProcess$")
	cmd.Env = append(os.Environ(), "ANYSYNC_CACHE_LOCK_HELPER="+dir)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("other process opening a locked cache: %v, want exit 3 (ErrLocked)", err)
	}
}

func TestConcurrentGetsFetchOnce(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "shared", 100<<10)
	const n = 32
	var calls atomic.Int64
	release := make(chan struct{})
	fetch := func(context.Context) ([]byte, error) {
		calls.Add(1)
		<-release
		return bytes.Clone(sealed), nil
	}
	var wg sync.WaitGroup
	results := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = c.Get(context.Background(), id, fetch, b.opener(id)) })
	}
	// Release the fetch only once every Get has missed and joined.
	for c.Stats().Misses < n {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("fetch called %d times for %d concurrent Gets, want 1", got, n)
	}
	for i := range n {
		if errs[i] != nil || !bytes.Equal(results[i], plain) {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
	}
}

func TestCorruptDiskCopyIsRefetched(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 0, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "x", 5000)
	f := &fetcher{sealed: sealed}
	mustGet(t, c, b, id, f.fetch, plain)
	p := c.blobPath(id)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, b, id, f.fetch, plain)
	if n := f.calls.Load(); n != 2 {
		t.Errorf("fetch called %d times, want 2 (refetch after corruption)", n)
	}
	if s := c.Stats(); s.Corrupt != 1 || s.DiskItems != 1 {
		t.Errorf("stats = %+v", s)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, sealed) {
		t.Error("disk copy was not replaced by the refetched blob")
	}
	// Truncated to nothing (a crash before the data hit the disk): dropped
	// on the next Open.
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	c.Close()
	c = mustOpen(t, dir, Options{DiskBytes: 1 << 20})
	if c.HasSealed(id) {
		t.Error("empty blob file survived Open")
	}
}

func TestFetchAndOpenErrorsAreNotCached(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "x", 1000)
	boom := errors.New("server unreachable")
	var calls atomic.Int64
	_, err := c.Get(context.Background(), id, func(context.Context) ([]byte, error) {
		calls.Add(1)
		return nil, boom
	}, b.opener(id))
	if !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the fetch error", err)
	}
	// Storage handing back a wrong blob: open fails, nothing is kept.
	_, wrong, wrongSealed := b.make(t, "other", 1000)
	_ = wrong
	_, err = c.Get(context.Background(), id, (&fetcher{sealed: wrongSealed}).fetch, b.opener(id))
	if !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("Get of a swapped blob = %v, want ErrAuth", err)
	}
	if c.HasSealed(id) {
		t.Error("blob that failed to open was kept on disk")
	}
	if s := c.Stats(); s.MemItems != 0 || s.DiskItems != 0 || s.Corrupt != 0 {
		t.Errorf("stats = %+v", s)
	}
	mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)
	if calls.Load() != 1 {
		t.Errorf("failing fetch called %d times", calls.Load())
	}
}

func TestCanceledGetCancelsUnwantedFetch(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "x", 1000)
	fetchCanceled := make(chan struct{})
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, id, func(fctx context.Context) ([]byte, error) {
			close(started)
			<-fctx.Done()
			close(fetchCanceled)
			return nil, fctx.Err()
		}, b.opener(id))
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Get = %v, want context.Canceled", err)
	}
	<-fetchCanceled // the only waiter left: the fetch must see the cancellation
	// The failed load is not cached: a new Get fetches afresh.
	mustGet(t, c, b, id, (&fetcher{sealed: sealed}).fetch, plain)

	// An already canceled context fails at once, without a fetch.
	id2, _, _ := b.make(t, "y", 10)
	if _, err := c.Get(ctx, id2, noFetch(t), b.opener(id2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context = %v", err)
	}
}

func TestCanceledWaiterDoesNotAbortOthers(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "x", 1000)
	release := make(chan struct{})
	var fetchErr atomic.Value
	fetch := func(fctx context.Context) ([]byte, error) {
		<-release
		if err := fctx.Err(); err != nil {
			fetchErr.Store(err)
		}
		return bytes.Clone(sealed), nil
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	err1 := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx1, id, fetch, b.opener(id))
		err1 <- err
	}()
	type result struct {
		b   []byte
		err error
	}
	res2 := make(chan result, 1)
	go func() {
		got, err := c.Get(context.Background(), id, fetch, b.opener(id))
		res2 <- result{got, err}
	}()
	for c.Stats().Misses < 2 {
		runtime.Gosched()
	}
	cancel1()
	if err := <-err1; !errors.Is(err, context.Canceled) {
		t.Errorf("first Get = %v, want context.Canceled", err)
	}
	close(release)
	r := <-res2
	if r.err != nil || !bytes.Equal(r.b, plain) {
		t.Errorf("second Get = %v", r.err)
	}
	if v := fetchErr.Load(); v != nil {
		t.Errorf("fetch saw %v though a Get still waited", v)
	}
}

func TestPutSealed(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "mine", 3000)
	if c.HasSealed(id) {
		t.Fatal("HasSealed before PutSealed")
	}
	if err := c.PutSealed(id, sealed); err != nil {
		t.Fatal(err)
	}
	if !c.HasSealed(id) {
		t.Fatal("HasSealed after PutSealed = false")
	}
	mustGet(t, c, b, id, noFetch(t), plain)
	if s := c.Stats(); s.DiskHits != 1 {
		t.Errorf("stats = %+v", s)
	}
	// Too big for the disk tier and unpinned: not stored, not an error.
	c.SetDiskLimit(100)
	id2, _, sealed2 := b.make(t, "big", 3000)
	if err := c.PutSealed(id2, sealed2); err != nil || c.HasSealed(id2) {
		t.Errorf("oversized PutSealed: err %v, stored %v", err, c.HasSealed(id2))
	}
}

// Unpinned blobs are written in place: never rewritten once on disk, no
// temporary file, and a copy torn by a crash is dropped and fetched again.
func TestPutSealedInPlace(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	c := mustOpen(t, dir, Options{DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "mine", 3000)
	if err := c.PutSealed(id, sealed); err != nil {
		t.Fatal(err)
	}
	p := c.blobPath(id)
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if tmp, _ := os.ReadDir(c.tmp); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	// The same blob sealed again (another nonce): the copy on disk, which
	// a reader may be reading, stays as it is.
	again, err := b.c.Seal(nil, plain, id, crypto.BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutSealed(id, again); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !os.SameFile(before, after) || !bytes.Equal(got, sealed) {
		t.Error("a blob already on disk was rewritten")
	}
	// A crash in the middle of the write: half the file, found by the scan
	// at the next Open, fails to open and is fetched again.
	if err := os.WriteFile(p, sealed[:len(sealed)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = mustOpen(t, dir, Options{DiskBytes: 1 << 20})
	f := &fetcher{sealed: sealed}
	mustGet(t, c, b, id, f.fetch, plain)
	if n, s := f.calls.Load(), c.Stats(); n != 1 || s.Corrupt != 1 {
		t.Errorf("torn copy: %d fetches, %d corrupt; want 1 and 1", n, s.Corrupt)
	}
}

func TestPinLogSurvivesDamage(t *testing.T) {
	dir := t.TempDir()
	ids := []crypto.ID{{1}, {2}, {3}}
	c, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Pin(ids...); err != nil {
		t.Fatal(err)
	}
	if err := c.Unpin(ids[0]); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// An append cut short by a crash leaves a partial record.
	f, err := os.OpenFile(filepath.Join(dir, "pins"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{opPin, 9, 9, 9})
	f.Close()
	c = mustOpen(t, dir, Options{})
	if c.IsPinned(ids[0]) || !c.IsPinned(ids[1]) || !c.IsPinned(ids[2]) {
		t.Error("pins wrong after a torn append")
	}
	if s := c.Stats(); s.Pins != 2 || s.PinLogDamaged != 0 {
		t.Errorf("stats = %+v", s)
	}
	c.Close()

	// Not a pin log at all: set aside, start empty, say so.
	if err := os.WriteFile(filepath.Join(dir, "pins"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = mustOpen(t, dir, Options{})
	if s := c.Stats(); s.Pins != 0 || s.PinLogDamaged == 0 {
		t.Errorf("stats after garbage pin log = %+v", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "pins.corrupt")); err != nil {
		t.Errorf("damaged pin log not kept aside: %v", err)
	}
}

func TestPinLogCompacts(t *testing.T) {
	dir := t.TempDir()
	c := mustOpen(t, dir, Options{})
	id := crypto.ID{7}
	for range 1000 {
		if err := c.Pin(id); err != nil {
			t.Fatal(err)
		}
		if err := c.Unpin(id); err != nil {
			t.Fatal(err)
		}
	}
	info, err := os.Stat(filepath.Join(dir, "pins"))
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(len(pinMagic) + (1024+2)*pinRecordSize); info.Size() > max {
		t.Errorf("pin log is %d bytes after 2000 changes to one pin, want <= %d", info.Size(), max)
	}
	if c.IsPinned(id) {
		t.Error("pin survived its unpin")
	}
}

func TestClosed(t *testing.T) {
	b := newBlobs(t)
	c, err := Open(t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	id, _, sealed := b.make(t, "x", 10)
	if _, err := c.Get(context.Background(), id, noFetch(t), b.opener(id)); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if err := c.PutSealed(id, sealed); !errors.Is(err, ErrClosed) {
		t.Errorf("PutSealed after Close = %v", err)
	}
	if err := c.Pin(id); !errors.Is(err, ErrClosed) {
		t.Errorf("Pin after Close = %v", err)
	}
}

func TestCloseCancelsRunningFetch(t *testing.T) {
	b := newBlobs(t)
	c, err := Open(t.TempDir(), Options{MemBytes: 1 << 20, DiskBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := b.make(t, "x", 10)
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), id, func(ctx context.Context) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}, b.opener(id))
		errc <- err
	}()
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Get during Close = %v, want context.Canceled", err)
	}
}

func TestConcurrentMixedUse(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 8 << 10, DiskBytes: 16 << 10})
	var all []testBlob
	for i := range 40 {
		id, plain, sealed := b.make(t, fmt.Sprint(i), 1000+i)
		all = append(all, testBlob{id, plain, sealed})
	}
	var wg sync.WaitGroup
	mixedUse(t, &wg, c, b, all, 8, 200)
	wg.Wait()
	s := c.Stats()
	if s.MemBytes > 8<<10 {
		t.Errorf("memory tier over its limit: %+v", s)
	}
	if s.DiskBytes-s.PinnedBytes > 16<<10 && s.DiskBytes > 16<<10 && s.DiskItems > s.PinnedItems {
		t.Errorf("disk tier over its limit with unpinned blobs left: %+v", s)
	}
	// The index matches the files.
	var files int
	var bytesOnDisk int64
	filepath.WalkDir(filepath.Join(c.dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
			info, _ := d.Info()
			bytesOnDisk += info.Size()
		}
		return nil
	})
	if files != s.DiskItems || bytesOnDisk != s.DiskBytes {
		t.Errorf("index says %d files / %d bytes, disk has %d / %d", s.DiskItems, s.DiskBytes, files, bytesOnDisk)
	}
}

// mixedUse starts goroutines that get, pin, unpin and put blobs of all at
// once, checking every plaintext they get.
func mixedUse(t *testing.T, wg *sync.WaitGroup, c *Cache, b *blobs, all []testBlob, goroutines, rounds int) {
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				x := all[(i*7+g*13)%len(all)]
				switch i % 10 {
				case 3:
					_ = c.Pin(x.id)
				case 7:
					_ = c.Unpin(x.id)
				case 9:
					_ = c.PutSealed(x.id, x.sealed)
				}
				got, err := c.Get(context.Background(), x.id, (&fetcher{sealed: x.sealed}).fetch, b.opener(x.id))
				if err != nil || !bytes.Equal(got, x.plain) {
					t.Errorf("Get: %v", err)
					return
				}
			}
		})
	}
}

func TestNilFetchReadsOnlyTheCache(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 0, DiskBytes: 1 << 20})
	id, plain, sealed := b.make(t, "x", 100)
	if _, err := c.Get(context.Background(), id, nil, b.opener(id)); !errors.Is(err, ErrNotCached) {
		t.Errorf("Get of an uncached blob with nil fetch = %v, want ErrNotCached", err)
	}
	if err := c.PutSealed(id, sealed); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, b, id, nil, plain)
	if _, err := c.Get(context.Background(), id, nil, nil); err == nil {
		t.Error("Get with a nil open succeeded")
	}
}
