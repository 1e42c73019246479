//go:build unix

package backup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/pack"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// versionsPage is how many versions one listing call asks for.
const versionsPage = 1000

// checkPackCache bounds the packs of trees a check keeps in memory.
const checkPackCache = 64 << 20

// CheckOptions configure a check.
type CheckOptions struct {
	Account *Account
	// All checks every version, not only the head.
	All bool
	// ReadData downloads packs and authenticates every blob in them.
	ReadData bool
	// Subset is the percentage of packs ReadData reads, chosen at random;
	// 0 means all of them.
	Subset float64
	// Workers is how many packs are checked at once; default 4.
	Workers int
	// Logf reports progress (one line per phase). Default: discard.
	Logf func(format string, args ...any)
}

// Problem is one defect found by check.
type Problem struct {
	Pack string          // empty if the blob is not in the index
	Blob crypto.ID       // zero for a problem of the whole pack
	Type crypto.BlobType // of Blob
	Err  error
}

func (p *Problem) Error() string {
	switch {
	case p.Pack == "":
		return fmt.Sprintf("%s blob %s: %v", p.Type, p.Blob, p.Err)
	case p.Blob.IsZero():
		return fmt.Sprintf("pack %s: %v", p.Pack, p.Err)
	}
	return fmt.Sprintf("pack %s: %s blob %s: %v", p.Pack, p.Type, p.Blob, p.Err)
}

func (p *Problem) Unwrap() error { return p.Err }

// Errors a Problem wraps besides the underlying I/O or crypto error.
var (
	// ErrMissingBlob: a referenced blob is not in the index.
	ErrMissingBlob = errors.New("referenced blob is not in the index")
	// ErrIndexMismatch: the index and the pack's header disagree about a
	// blob (not in the pack, other type, offset, length or size).
	ErrIndexMismatch = errors.New("index entry does not match the pack header")
)

// CheckReport describes a finished check.
type CheckReport struct {
	Versions  int64 `json:"versions"`
	Trees     int64 `json:"trees"`
	DataBlobs int64 `json:"data_blobs"`
	Packs     int64 `json:"packs"`
	PacksRead int64 `json:"packs_read"`
	BytesRead int64 `json:"bytes_read"`
	BlobsRead int64 `json:"blobs_read"`
	// Problems lists every defect; corrupt packs appear with their names.
	Problems []Problem `json:"-"`
}

// ref is what the trees say about a blob.
type ref struct {
	t      crypto.BlobType
	length uint32 // plaintext length, data blobs only
}

type checker struct {
	o     CheckOptions
	repo  *repo.Repo
	codec *pack.Codec
	ids   *crypto.IDHasher

	mu       sync.Mutex
	refs     map[crypto.ID]ref
	problems []Problem
	rep      CheckReport
}

func (c *checker) problem(p Problem) {
	c.mu.Lock()
	c.problems = append(c.problems, p)
	c.mu.Unlock()
}

// Check verifies that every blob the head (or every version) refers to is
// in the index and in its pack as the index says; with ReadData it also
// downloads packs and authenticates every blob in them. Defects are listed
// in the report and make the error wrap ErrCheckFailed.
func Check(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	if err := o.Account.validate(); err != nil {
		return nil, err
	}
	// Trees are read many to a pack: the pack cache turns that into a
	// few whole-pack downloads.
	rp, err := o.Account.openRepoOver(newPackCache(o.Account.Objects, checkPackCache, restoreWholeAfter))
	if err != nil {
		return nil, err
	}
	codec, err := pack.NewCodec(crypto.NewBlobCipher(o.Account.Keys.FileKey))
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Subset < 0 || o.Subset > 100 || math.IsNaN(o.Subset) {
		return nil, fmt.Errorf("check: subset %v%% is not in 0..100", o.Subset)
	}
	if err := o.Account.Remote.SyncIndex(ctx); err != nil {
		return nil, fmt.Errorf("sync index: %w", err)
	}
	c := &checker{o: o, repo: rp, codec: codec, ids: crypto.NewIDHasher(o.Account.Keys.AuthKey), refs: map[crypto.ID]ref{}}

	versions, err := c.versions(ctx)
	if err != nil {
		return nil, err
	}
	o.Logf("checking %d version(s)", len(versions))
	if err := c.walkTrees(ctx, versions); err != nil {
		return nil, err
	}
	o.Logf("%d trees and %d data blobs referenced; checking packs", c.rep.Trees, c.rep.DataBlobs)
	byPack, err := c.locate(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.checkPacks(ctx, byPack); err != nil {
		return nil, err
	}
	rep := c.rep
	rep.Problems = c.problems
	slices.SortFunc(rep.Problems, func(a, b Problem) int {
		if a.Pack != b.Pack {
			if a.Pack < b.Pack {
				return -1
			}
			return 1
		}
		return slices.Compare(a.Blob[:], b.Blob[:])
	})
	if len(rep.Problems) > 0 {
		return &rep, fmt.Errorf("%d problem(s): %w", len(rep.Problems), ErrCheckFailed)
	}
	return &rep, nil
}

func (c *checker) versions(ctx context.Context) ([]Head, error) {
	if !c.o.All {
		h, err := c.o.Account.Remote.Head(ctx)
		if err != nil {
			return nil, fmt.Errorf("read head: %w", err)
		}
		if h.Seq == 0 {
			return nil, nil
		}
		return []Head{h}, nil
	}
	var out []Head
	for after := uint64(0); ; {
		page, err := c.o.Account.Remote.Versions(ctx, after, versionsPage)
		if err != nil {
			return nil, fmt.Errorf("list versions after %d: %w", after, err)
		}
		if len(page) == 0 {
			return out, nil
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

// walkTrees loads every version and every tree reachable from them (each
// once), on several goroutines, recording the blobs they refer to.
func (c *checker) walkTrees(ctx context.Context, versions []Head) error {
	var roots []crypto.ID
	for _, v := range versions {
		c.refs[v.Version] = ref{t: crypto.BlobVersion}
		c.rep.Versions++
		ver, err := c.repo.LoadVersion(ctx, v.Version)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.problem(Problem{Blob: v.Version, Type: crypto.BlobVersion, Err: fmt.Errorf("version %d: %w", v.Seq, err)})
			continue
		}
		roots = append(roots, ver.Root)
	}
	q := &treeQueue{}
	q.cond = sync.NewCond(&q.mu)
	push := func(id crypto.ID) {
		c.mu.Lock()
		_, seen := c.refs[id]
		if !seen {
			c.refs[id] = ref{t: crypto.BlobTree}
			c.rep.Trees++
		}
		c.mu.Unlock()
		if !seen {
			q.push(id)
		}
	}
	for _, r := range roots {
		push(r)
	}
	var wg sync.WaitGroup
	for range c.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, ok := q.take(ctx)
				if !ok {
					return
				}
				c.loadTree(ctx, id, push)
				q.done()
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// treeQueue is the work list of a tree walk that its workers extend: a
// worker waits while the list is empty but others may still add to it.
type treeQueue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []crypto.ID
	busy  int
}

func (q *treeQueue) push(id crypto.ID) {
	q.mu.Lock()
	q.items = append(q.items, id)
	q.mu.Unlock()
	q.cond.Signal()
}

// take returns the next tree, or false once the walk is over (nothing
// queued, nobody busy) or ctx is done.
func (q *treeQueue) take(ctx context.Context) (crypto.ID, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && q.busy > 0 && ctx.Err() == nil {
		q.cond.Wait()
	}
	if len(q.items) == 0 || ctx.Err() != nil {
		q.cond.Broadcast() // wake the others so they see the end too
		return crypto.ID{}, false
	}
	id := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	q.busy++
	return id, true
}

func (q *treeQueue) done() {
	q.mu.Lock()
	q.busy--
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (c *checker) loadTree(ctx context.Context, id crypto.ID, push func(crypto.ID)) {
	t, err := c.repo.LoadTree(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			c.problem(Problem{Blob: id, Type: crypto.BlobTree, Err: err})
		}
		return
	}
	for i := range t.Entries {
		e := &t.Entries[i]
		switch e.Kind {
		case tree.KindDir:
			push(e.Subtree)
		case tree.KindFile:
			c.mu.Lock()
			for _, ch := range e.Chunks {
				if _, seen := c.refs[ch.ID]; !seen {
					c.refs[ch.ID] = ref{t: crypto.BlobData, length: ch.Length}
					c.rep.DataBlobs++
				}
			}
			c.mu.Unlock()
		}
	}
}

// located is a referenced blob and where the index puts it.
type located struct {
	id  crypto.ID
	ref ref
	loc repo.Location
}

// locate looks every referenced blob up in the index, grouped by pack.
func (c *checker) locate(ctx context.Context) (map[string][]located, error) {
	out := map[string][]located{}
	for id, r := range c.refs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		loc, ok, err := c.o.Account.Index.Lookup(id)
		if err != nil {
			return nil, fmt.Errorf("look up blob %s: %w", id.Short(), err)
		}
		if !ok {
			c.problem(Problem{Blob: id, Type: r.t, Err: ErrMissingBlob})
			continue
		}
		out[loc.Pack] = append(out[loc.Pack], located{id: id, ref: r, loc: loc})
	}
	return out, nil
}

// checkPacks compares each pack's header with the index, and reads the
// selected packs whole.
func (c *checker) checkPacks(ctx context.Context, byPack map[string][]located) error {
	names := make([]string, 0, len(byPack))
	for name := range byPack {
		names = append(names, name)
	}
	slices.Sort(names)
	c.rep.Packs = int64(len(names))
	read := c.selectPacks(names)
	var (
		wg        sync.WaitGroup
		next      atomic.Int64
		bytesRead atomic.Int64
		blobsRead atomic.Int64
		packsRead atomic.Int64
	)
	for range c.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) || ctx.Err() != nil {
					return
				}
				name := names[i]
				if read[name] {
					n, blobs := c.readPack(ctx, name, byPack[name])
					bytesRead.Add(n)
					blobsRead.Add(blobs)
					packsRead.Add(1)
				} else {
					c.checkHeader(ctx, name, byPack[name])
				}
			}
		}()
	}
	wg.Wait()
	c.rep.BytesRead, c.rep.BlobsRead, c.rep.PacksRead = bytesRead.Load(), blobsRead.Load(), packsRead.Load()
	return ctx.Err()
}

// selectPacks returns the packs to read whole: none without ReadData, a
// random Subset percent (at least one) with it.
func (c *checker) selectPacks(names []string) map[string]bool {
	out := map[string]bool{}
	if !c.o.ReadData {
		return out
	}
	if c.o.Subset == 0 || c.o.Subset == 100 {
		for _, n := range names {
			out[n] = true
		}
		return out
	}
	// Rank packs by a keyed hash under a fresh key: a uniformly random
	// subset, different on every run.
	var key [32]byte
	_, _ = rand.Read(key[:])
	h, _ := blake3.NewKeyed(key[:])
	type ranked struct {
		name string
		r    uint64
	}
	rs := make([]ranked, len(names))
	for i, n := range names {
		h.Reset()
		_, _ = h.Write([]byte(n))
		rs[i] = ranked{n, binary.LittleEndian.Uint64(h.Sum(nil))}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		switch {
		case a.r < b.r:
			return -1
		case a.r > b.r:
			return 1
		}
		return 0
	})
	k := int(math.Ceil(float64(len(names)) * c.o.Subset / 100))
	for _, r := range rs[:min(max(k, 1), len(rs))] {
		out[r.name] = true
	}
	return out
}

// checkHeader reads a pack's header and compares it with the index.
func (c *checker) checkHeader(ctx context.Context, name string, blobs []located) {
	entries, err := pack.ReadHeader(ctx, c.o.Account.Objects, c.codec, name)
	if err != nil {
		if ctx.Err() == nil {
			c.problem(Problem{Pack: name, Err: err})
		}
		return
	}
	c.compare(name, entries, blobs)
}

// compare reports referenced blobs the header does not list as the index
// and the trees say.
func (c *checker) compare(name string, entries []pack.Entry, blobs []located) {
	byID := make(map[crypto.ID]*pack.Entry, len(entries))
	for i := range entries {
		byID[entries[i].ID] = &entries[i]
	}
	for _, b := range blobs {
		e, ok := byID[b.id]
		switch {
		case !ok:
			c.problem(Problem{Pack: name, Blob: b.id, Type: b.ref.t, Err: fmt.Errorf("%w: not in the pack", ErrIndexMismatch)})
		case e.Type != b.ref.t:
			c.problem(Problem{Pack: name, Blob: b.id, Type: b.ref.t, Err: fmt.Errorf("%w: stored as a %s blob", ErrIndexMismatch, e.Type)})
		case e.Offset != b.loc.Offset || e.Length != b.loc.Length:
			c.problem(Problem{Pack: name, Blob: b.id, Type: b.ref.t, Err: fmt.Errorf("%w: at %d+%d, index says %d+%d",
				ErrIndexMismatch, e.Offset, e.Length, b.loc.Offset, b.loc.Length)})
		case b.ref.t == crypto.BlobData && e.RawLength != b.ref.length:
			c.problem(Problem{Pack: name, Blob: b.id, Type: b.ref.t, Err: fmt.Errorf("%w: %d bytes, the tree says %d",
				ErrIndexMismatch, e.RawLength, b.ref.length)})
		}
	}
}

// readPack downloads a pack, checks its header against the index, and
// decrypts and verifies every blob in it. It returns the bytes and blobs
// read.
func (c *checker) readPack(ctx context.Context, name string, blobs []located) (int64, int64) {
	data, err := readAll(ctx, c.o.Account.Objects, name)
	if err != nil {
		if ctx.Err() == nil {
			c.problem(Problem{Pack: name, Err: fmt.Errorf("download: %w", err)})
		}
		return 0, 0
	}
	n := int64(len(data))
	if n < pack.TrailerSize {
		c.problem(Problem{Pack: name, Err: fmt.Errorf("%d bytes: %w", n, pack.ErrCorrupt)})
		return n, 0
	}
	hlen, err := pack.ParseTrailer(data[n-pack.TrailerSize:])
	if err == nil && int64(hlen)+pack.TrailerSize > n {
		err = fmt.Errorf("header of %d bytes in a %d-byte pack: %w", hlen, n, pack.ErrCorrupt)
	}
	var entries []pack.Entry
	if err == nil {
		entries, err = pack.DecodeHeader(c.codec, name, data[n-pack.TrailerSize-int64(hlen):n-pack.TrailerSize], n)
	}
	if err != nil {
		c.problem(Problem{Pack: name, Err: err})
		return n, 0
	}
	c.compare(name, entries, blobs)
	var count int64
	var plain []byte
	for _, e := range entries {
		sealed := data[e.Offset : e.Offset+e.Length] // DecodeHeader checked the tiling
		plain, err = c.codec.Decode(plain[:0], sealed, e.ID, e.Type, int(e.RawLength))
		if err == nil && c.ids.Sum(plain) != e.ID {
			err = repo.ErrCorrupt
		}
		if err == nil && len(plain) != int(e.RawLength) {
			err = fmt.Errorf("%d bytes, header says %d: %w", len(plain), e.RawLength, repo.ErrCorrupt)
		}
		if err != nil {
			c.problem(Problem{Pack: name, Blob: e.ID, Type: e.Type, Err: fmt.Errorf("at offset %d: %w", e.Offset, err)})
		}
		count++
	}
	return n, count
}

// readAll downloads a whole object.
func readAll(ctx context.Context, s objstore.ObjectStore, name string) ([]byte, error) {
	rc, err := s.GetRange(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
