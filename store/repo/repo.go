// Package repo is the repository: it turns files into chunk lists and back,
// stores trees and versions, batches sealed blobs into packs, uploads them to
// an object store and keeps the blob index. It is the one place that knows
// how chunker, pack, tree, cache and objstore fit together.
package repo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/chunker"
	"github.com/anysync/anysync/store/internal/bigbuf"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/pack"
	"github.com/anysync/anysync/store/tree"
)

// Errors callers can test with errors.Is.
var (
	// ErrBlobNotFound means no pack known to the index holds the blob.
	ErrBlobNotFound = errors.New("blob not found in index")
	// ErrCorrupt means a blob authenticated but is not what its ID names,
	// or has another length than the tree says.
	ErrCorrupt = errors.New("blob content does not match its ID")
)

// DefaultPackSize is the target size of a pack (brief: about 16 MiB).
const DefaultPackSize = 16 << 20

// maxInflightUploads bounds packs being uploaded at once, and so the memory
// that finished but unacknowledged packs hold. Three rather than two: an
// upload's reply waits for the server to make the pack durable (~40 ms per
// 16 MiB pack on this project's VM), which a third upload overlaps
// (1 GiB + sync --wait, 10 pairs: 7 faster, mean ~6 %); four measured no
// better than two, with more memory touched.
const maxInflightUploads = 3

// Cache is the chunk cache as the repository uses it (store/cache
// implements it): Get returns a blob's plaintext, calling fetch for the
// sealed bytes and open to authenticate and decrypt them on a miss.
type Cache interface {
	Get(ctx context.Context, id crypto.ID, fetch func(context.Context) ([]byte, error), open func(sealed []byte) ([]byte, error)) ([]byte, error)
}

// sealedPutter is a cache that can take sealed blobs we wrote ourselves.
type sealedPutter interface {
	PutSealed(id crypto.ID, sealed []byte) error
}

// Config says what a repository is made of.
type Config struct {
	Keys    *crypto.AccountKeys
	Objects objstore.ObjectStore
	Index   Index
	// Cache is optional; without it every read fetches from Objects.
	Cache Cache
	// PackSize is the target pack size; 0 means DefaultPackSize.
	PackSize int
	// Workers is the number of goroutines that hash and seal chunks;
	// 0 means GOMAXPROCS.
	Workers int
	// Chunker overrides the chunker parameters (tests use small chunks).
	Chunker *chunker.Params
	// Compression is how hard new blobs are compressed; the zero value is
	// pack.LevelFastest (the drive). Backups use pack.LevelDefault.
	Compression pack.Level
	// LookupBatch, if positive, defers small data blobs (SaveBlob of at
	// most SmallBlobMax bytes) and looks them up in the index this many
	// at a time (Index must be a BatchIndex); see SaveBlob. 0: every blob
	// is looked up on its own, before SaveBlob returns.
	LookupBatch int
}

// SmallBlobMax is the largest data blob SaveBlob defers for a batched
// index lookup (Config.LookupBatch): a file no larger than the default
// minimum chunk is one blob.
const SmallBlobMax = 256 << 10

// maxBatchBytes bounds the plaintext a lookup batch holds. The plaintext
// is copied into an arena of maxBatchBytes+SmallBlobMax (4 MiB: huge
// pages, bigbuf), and arenas are reused: a fresh copy per blob made the
// heap (and so the memory the process touches) grow by the size of every
// small file.
const maxBatchBytes = 4<<20 - SmallBlobMax

// spareArenas is how many batch arenas wait for reuse.
const spareArenas = 4

// Repo is safe for concurrent use.
type Repo struct {
	ids      *crypto.IDHasher
	gear     *[256]uint64
	params   chunker.Params
	codec    *pack.Codec
	objs     objstore.ObjectStore
	index    Index
	cache    Cache
	workers  int
	packSize int

	// bufs and sealBufs recycle chunk-sized buffers of the write pipeline;
	// chunkers recycles chunkers (each holds a 2×Max buffer). bufs and
	// chunkers are free lists, not sync.Pools: a pool drops its buffers at
	// every GC, and each new 4 or 8 MiB buffer is memory the process
	// touches afresh (page faults cost ~20 µs each on the VMs we measure
	// on). They hold at most what was in use at once.
	sealBufs sync.Pool
	bufs     chan *[]byte
	chunkers chan *chunker.Chunker

	flushMu sync.Mutex
	mu      sync.Mutex
	packers map[packClass]*pack.Writer
	// pending holds blobs that are sealed but not yet in the index: in an
	// unfinished pack, or in a pack being uploaded. They are served from
	// here so a just-written tree can be read back before Flush.
	pending    map[crypto.ID]*pendingBlob
	failed     []finishedPack // uploads to retry on the next Flush
	newEntries []IndexEntry
	// batch collects small data blobs waiting for a batched index lookup
	// (lookupBatch > 0); batchErr, once set, fails every later Flush: a
	// blob that SaveBlob accepted was lost.
	batch       []deferredBlob
	batchBytes  int
	arena       []byte // holds the batch's plaintext
	arenas      chan []byte
	lookupBatch int
	batchErr    error

	uploadSlots chan struct{}
	uploads     sync.WaitGroup
	uploadErr   error
}

// packClass separates metadata (trees, versions) from file data, so a
// device loading the tree touches few, small packs.
type packClass int

const (
	classData packClass = iota
	classMeta
)

func classOf(t crypto.BlobType) packClass {
	if t == crypto.BlobData {
		return classData
	}
	return classMeta
}

type pendingBlob struct {
	t      crypto.BlobType
	sealed []byte        // metadata blobs only; set before ready is closed
	ready  chan struct{} // closed when sealed is set, or the blob is in a pack, found in the index, or lost
}

// deferredBlob is a small data blob waiting for a batched index lookup.
type deferredBlob struct {
	id    crypto.ID
	plain []byte // the repository's own copy
	pb    *pendingBlob
}

type finishedPack struct {
	class packClass
	*pack.Finished
}

// Open returns a repository over cfg.
func Open(cfg Config) (*Repo, error) {
	if cfg.Keys == nil || cfg.Objects == nil || cfg.Index == nil {
		return nil, errors.New("open repository: keys, object store and index are required")
	}
	codec, err := pack.NewCodecLevel(crypto.NewBlobCipher(cfg.Keys.FileKey), cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	params := chunker.DefaultParams()
	if cfg.Chunker != nil {
		params = *cfg.Chunker
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	r := &Repo{
		ids:         crypto.NewIDHasher(cfg.Keys.AuthKey),
		gear:        crypto.GearTable(cfg.Keys.AuthKey),
		params:      params,
		codec:       codec,
		objs:        cfg.Objects,
		index:       cfg.Index,
		cache:       cfg.Cache,
		workers:     cfg.Workers,
		packSize:    cfg.PackSize,
		packers:     make(map[packClass]*pack.Writer),
		pending:     make(map[crypto.ID]*pendingBlob),
		uploadSlots: make(chan struct{}, maxInflightUploads),
	}
	if cfg.LookupBatch > 0 {
		if _, ok := cfg.Index.(BatchIndex); !ok {
			return nil, errors.New("open repository: batched lookups need an index with batch lookups")
		}
		r.lookupBatch = cfg.LookupBatch
		r.arenas = make(chan []byte, spareArenas)
	}
	if r.workers <= 0 {
		r.workers = runtime.GOMAXPROCS(0)
	}
	if r.packSize <= 0 {
		r.packSize = DefaultPackSize
	}
	r.bufs = make(chan *[]byte, 2*r.workers+2)
	r.chunkers = make(chan *chunker.Chunker, 2)
	// Sealed blobs start small (most files are); a buffer grown by a large
	// chunk keeps its size in the pool.
	r.sealBufs.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	return r, nil
}

// getBuf returns a chunk buffer from the free list, or a new one.
func (r *Repo) getBuf() *[]byte {
	select {
	case b := <-r.bufs:
		return b
	default:
		b := bigbuf.Make(0, r.params.Max)
		return &b
	}
}

func (r *Repo) putBuf(b *[]byte) {
	select {
	case r.bufs <- b:
	default:
	}
}

// ID returns the blob ID of plaintext data.
func (r *Repo) ID(data []byte) crypto.ID { return r.ids.Sum(data) }

// Has reports whether the blob is stored or on its way to storage.
func (r *Repo) Has(id crypto.ID) (bool, error) {
	r.mu.Lock()
	_, ok := r.pending[id]
	r.mu.Unlock()
	if ok {
		return true, nil
	}
	return r.known(id)
}

// known is the index lookup of deduplication.
func (r *Repo) known(id crypto.ID) (bool, error) {
	if d, ok := r.index.(DedupIndex); ok {
		return d.Known(id)
	}
	_, ok, err := r.index.Lookup(id)
	return ok, err
}

// SaveBlob stores a blob unless it is already known, and returns its ID.
//
// With Config.LookupBatch, a data blob of at most SmallBlobMax bytes is
// copied and deferred: SaveBlob returns at once, and the blobs are looked
// up in the index together (one query instead of one per blob; on a
// backup of small files the per-blob lookups cost a tenth of the CPU).
// The SaveBlob call that fills a batch, or the next Flush, looks the batch
// up and seals what is new. A deferred blob counts as pending (Has,
// LoadBlob, PendingBlobs). If the batch fails (the index cannot be read),
// the blobs SaveBlob accepted are lost, so that Flush and every later one
// fail: nothing may commit a tree naming them.
func (r *Repo) SaveBlob(ctx context.Context, t crypto.BlobType, plain []byte) (crypto.ID, error) {
	id := r.ids.Sum(plain)
	if r.lookupBatch > 0 && t == crypto.BlobData && len(plain) <= SmallBlobMax {
		return id, r.deferBlob(ctx, id, plain)
	}
	return id, r.saveBlob(ctx, t, id, plain)
}

// saveBlob seals plain and adds it to the current pack of its class, unless
// the index or the pending set already has it. A full pack is uploaded in
// the background.
func (r *Repo) saveBlob(ctx context.Context, t crypto.BlobType, id crypto.ID, plain []byte) error {
	if err := r.takeUploadErr(); err != nil {
		return err
	}
	if ok, err := r.known(id); err != nil {
		return fmt.Errorf("look up blob %s: %w", id.Short(), err)
	} else if ok {
		return nil
	}
	r.mu.Lock()
	if _, ok := r.pending[id]; ok {
		r.mu.Unlock()
		return nil
	}
	pb := &pendingBlob{t: t, ready: make(chan struct{})}
	r.pending[id] = pb
	r.mu.Unlock()
	return r.store(ctx, t, id, plain, pb)
}

// store seals a blob that is pending as pb and adds it to the current pack
// of its class; on failure it is no longer pending.
func (r *Repo) store(ctx context.Context, t crypto.BlobType, id crypto.ID, plain []byte, pb *pendingBlob) error {
	// Seal into a pooled buffer: the pack writer copies it, so only
	// metadata blobs (small, and read back before a flush by the committer)
	// keep their own copy for LoadBlob.
	buf := r.sealBufs.Get().(*[]byte)
	defer r.sealBufs.Put(buf)
	sealed, err := r.codec.Encode((*buf)[:0], plain, id, t)
	if err != nil {
		r.drop(id, pb)
		return fmt.Errorf("seal %s blob %s: %w", t, id.Short(), err)
	}
	*buf = sealed
	// Keep our own writes on local disk, so they read back without the
	// network (offline too) once the staging copy is gone.
	if c, ok := r.cache.(sealedPutter); ok && r.cache != nil {
		if err := c.PutSealed(id, sealed); err != nil {
			r.drop(id, pb)
			return fmt.Errorf("cache %s blob %s: %w", t, id.Short(), err)
		}
	}

	r.mu.Lock()
	if t != crypto.BlobData {
		pb.sealed = append([]byte(nil), sealed...)
	}
	close(pb.ready)
	class := classOf(t)
	w := r.packerLocked(class)
	if err := w.AddSealed(t, id, sealed, len(plain)); err != nil {
		delete(r.pending, id)
		r.mu.Unlock()
		return fmt.Errorf("add %s blob %s to pack: %w", t, id.Short(), err)
	}
	var full *finishedPack
	if w.Full() {
		full, err = finishLocked(w, class)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if full != nil {
		return r.startUpload(ctx, *full)
	}
	return nil
}

// drop forgets a pending blob that will not be stored.
func (r *Repo) drop(id crypto.ID, pb *pendingBlob) {
	r.mu.Lock()
	delete(r.pending, id)
	r.mu.Unlock()
	close(pb.ready)
}

// deferBlob adds a small data blob to the lookup batch, and looks the
// batch up if that filled it.
func (r *Repo) deferBlob(ctx context.Context, id crypto.ID, plain []byte) error {
	if err := r.takeUploadErr(); err != nil {
		return err
	}
	r.mu.Lock()
	if err := r.batchErr; err != nil {
		r.mu.Unlock()
		return err
	}
	if _, ok := r.pending[id]; ok {
		r.mu.Unlock()
		return nil
	}
	pb := &pendingBlob{t: crypto.BlobData, ready: make(chan struct{})}
	r.pending[id] = pb
	if r.arena == nil {
		select {
		case r.arena = <-r.arenas:
		default:
			r.arena = bigbuf.Make(0, maxBatchBytes+SmallBlobMax)
		}
	}
	// The batch is taken once it holds maxBatchBytes, and no blob is
	// larger than SmallBlobMax: the arena never has to move.
	start := len(r.arena)
	r.arena = append(r.arena, plain...)
	r.batch = append(r.batch, deferredBlob{id: id, plain: r.arena[start:len(r.arena):len(r.arena)], pb: pb})
	r.batchBytes += len(plain)
	var full []deferredBlob
	var arena []byte
	if len(r.batch) >= r.lookupBatch || r.batchBytes >= maxBatchBytes {
		full, arena = r.takeBatchLocked()
	}
	r.mu.Unlock()
	defer r.recycleArena(arena)
	return r.storeBatch(ctx, full)
}

func (r *Repo) takeBatchLocked() ([]deferredBlob, []byte) {
	b, a := r.batch, r.arena
	r.batch, r.batchBytes, r.arena = nil, 0, nil
	return b, a
}

// recycleArena keeps a batch's arena for a later batch, once every blob
// of the batch is settled.
func (r *Repo) recycleArena(a []byte) {
	if a == nil {
		return
	}
	select {
	case r.arenas <- a[:0]:
	default:
	}
}

// storeBatch looks a batch of deferred blobs up in the index and stores
// those it lacks. Every blob of the batch is settled (stored, known, or
// lost) when it returns.
func (r *Repo) storeBatch(ctx context.Context, batch []deferredBlob) error {
	if len(batch) == 0 {
		return nil
	}
	ids := make([]crypto.ID, len(batch))
	for i, d := range batch {
		ids[i] = d.id
	}
	known, err := r.index.(BatchIndex).Contains(ids)
	if err == nil && len(known) != len(ids) {
		err = fmt.Errorf("index answered %d of %d lookups", len(known), len(ids))
	}
	if err != nil {
		err = fmt.Errorf("look up %d blobs: %w", len(ids), err)
		r.loseBatch(batch, err)
		return err
	}
	for i, d := range batch {
		if known[i] {
			r.drop(d.id, d.pb) // stored before: in the index, not pending
			continue
		}
		if err := r.store(ctx, crypto.BlobData, d.id, d.plain, d.pb); err != nil {
			r.loseBatch(batch[i+1:], err)
			return err
		}
	}
	return nil
}

// loseBatch settles blobs that could not be stored and fails every later
// Flush: SaveBlob already told their callers they were saved.
func (r *Repo) loseBatch(batch []deferredBlob, err error) {
	for _, d := range batch {
		r.drop(d.id, d.pb)
	}
	r.mu.Lock()
	if r.batchErr == nil {
		r.batchErr = fmt.Errorf("blobs saved for a batched lookup were lost: %w", err)
	}
	r.mu.Unlock()
}

// storeDeferred stores the blobs waiting for a batched lookup.
func (r *Repo) storeDeferred(ctx context.Context) error {
	r.mu.Lock()
	batch, arena := r.takeBatchLocked()
	r.mu.Unlock()
	defer r.recycleArena(arena)
	return r.storeBatch(ctx, batch)
}

func (r *Repo) packerLocked(c packClass) *pack.Writer {
	w := r.packers[c]
	if w == nil {
		if c == classMeta {
			w = pack.NewSmallWriter(r.codec, r.packSize) // a few trees per commit
		} else {
			w = pack.NewWriter(r.codec, r.packSize)
		}
		r.packers[c] = w
	}
	return w
}

func finishLocked(w *pack.Writer, c packClass) (*finishedPack, error) {
	f, err := w.FinishPieces()
	if err != nil {
		return nil, fmt.Errorf("finish pack: %w", err)
	}
	return &finishedPack{class: c, Finished: f}, nil
}

// startUpload uploads a finished pack in the background, waiting for a slot
// so at most maxInflightUploads packs are held in memory.
func (r *Repo) startUpload(ctx context.Context, p finishedPack) error {
	select {
	case r.uploadSlots <- struct{}{}:
	case <-ctx.Done():
		r.mu.Lock()
		r.failed = append(r.failed, p)
		r.mu.Unlock()
		return ctx.Err()
	}
	r.uploads.Add(1)
	run := func() {
		defer r.uploads.Done()
		defer func() { <-r.uploadSlots }()
		// The upload outlives the caller's request: it belongs to the
		// repository, and Flush waits for it.
		if err := r.upload(context.WithoutCancel(ctx), p); err != nil {
			r.mu.Lock()
			r.failed = append(r.failed, p)
			if r.uploadErr == nil {
				r.uploadErr = err
			}
			r.mu.Unlock()
		}
	}
	if ctx.Value(callerUploadsKey{}) != nil {
		run()
		return nil
	}
	go run()
	return nil
}

type callerUploadsKey struct{}

// CallerUploads returns a context under which the packs that writes fill
// are uploaded on the writing goroutine instead of in the background: a
// writer on a thread of low priority (storing ahead) keeps the upload's
// encryption and copying at that priority too.
func CallerUploads(ctx context.Context) context.Context {
	return context.WithValue(ctx, callerUploadsKey{}, true)
}

// upload stores one pack, then records its blobs in the index. Order matters:
// a blob is in the index only once its pack is stored.
func (r *Repo) upload(ctx context.Context, p finishedPack) error {
	if err := r.objs.Put(ctx, p.Name, objstore.NewPiecesReader(p.Pieces), p.Size); err != nil {
		return fmt.Errorf("upload pack %s: %w", p.Name, err)
	}
	entries := make([]IndexEntry, len(p.Entries))
	for i, e := range p.Entries {
		entries[i] = IndexEntry{ID: e.ID, Location: Location{Pack: p.Name, Offset: e.Offset, Length: e.Length}}
	}
	if err := r.index.Add(entries); err != nil {
		return fmt.Errorf("index pack %s: %w", p.Name, err)
	}
	r.mu.Lock()
	for _, e := range p.Entries {
		delete(r.pending, e.ID)
	}
	r.newEntries = append(r.newEntries, entries...)
	// The store has the pack and keeps no reference to our bytes
	// (objstore.ObjectStore.Put): lay the next pack out in them.
	if w := r.packers[p.class]; w != nil {
		w.RecycleFinished(p.Finished)
	}
	r.mu.Unlock()
	return nil
}

func (r *Repo) takeUploadErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.uploadErr
	r.uploadErr = nil
	return err
}

// Flush finishes the open packs, uploads them and every pack whose upload
// failed before, and waits until all are stored and indexed. After a nil
// Flush, every blob saved so far is in the index.
func (r *Repo) Flush(ctx context.Context) error {
	// One flush at a time: a second caller must not return before the
	// first one's uploads are indexed.
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if err := r.storeDeferred(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	if err := r.batchErr; err != nil {
		r.mu.Unlock()
		return err
	}
	var todo []finishedPack
	for _, c := range []packClass{classData, classMeta} {
		w := r.packers[c]
		if w == nil || w.Len() == 0 {
			continue
		}
		p, err := finishLocked(w, c)
		if err != nil {
			r.mu.Unlock()
			return err
		}
		todo = append(todo, *p)
	}
	r.mu.Unlock()

	// The packs just finished go up side by side (and beside background
	// uploads still running): this is the tail of every commit.
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.upload(ctx, todo[i])
		}()
	}
	// Background uploads' failures join the retry list.
	r.uploads.Wait()
	wg.Wait()
	r.mu.Lock()
	retry := r.failed
	r.failed = nil
	r.uploadErr = nil
	r.mu.Unlock()

	var firstErr error
	for i, p := range retry {
		if err := r.upload(ctx, p); err != nil {
			r.mu.Lock()
			r.failed = append(r.failed, retry[i:]...)
			r.mu.Unlock()
			firstErr = err
			break
		}
	}
	for i, err := range errs {
		if err != nil {
			r.mu.Lock()
			r.failed = append(r.failed, todo[i])
			r.mu.Unlock()
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// TakeNewEntries returns the index entries of the packs uploaded since the
// last call: what the next commit must carry to the server.
func (r *Repo) TakeNewEntries() []IndexEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.newEntries
	r.newEntries = nil
	return e
}

// PendingBlobs returns how many sealed blobs wait for upload.
func (r *Repo) PendingBlobs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// LoadBlob returns the verified plaintext of a blob. The returned slice may
// be shared with the cache: callers must not modify it.
func (r *Repo) LoadBlob(ctx context.Context, t crypto.BlobType, id crypto.ID) ([]byte, error) {
	maxLen := pack.MaxLen(t)
	r.mu.Lock()
	pb, ok := r.pending[id]
	r.mu.Unlock()
	if ok {
		select {
		case <-pb.ready:
		default:
			// Perhaps waiting for a batched lookup: store the batch
			// (a batch taken by another goroutine settles on its own).
			if err := r.storeDeferred(ctx); err != nil {
				return nil, fmt.Errorf("load %s blob %s: %w", t, id.Short(), err)
			}
		}
		select {
		case <-pb.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if pb.sealed != nil {
			return r.open(pb.sealed, id, t, maxLen)
		}
		// A data chunk still in an open pack: store it, then read it
		// like any other.
		if err := r.Flush(ctx); err != nil {
			return nil, fmt.Errorf("load %s blob %s: flush pending pack: %w", t, id.Short(), err)
		}
	}
	loc, ok, err := r.index.Lookup(id)
	if err != nil {
		return nil, fmt.Errorf("look up %s blob %s: %w", t, id.Short(), err)
	}
	if !ok {
		return nil, fmt.Errorf("load %s blob %s: %w", t, id.Short(), ErrBlobNotFound)
	}
	fetch := func(ctx context.Context) ([]byte, error) {
		// The index does not carry plaintext lengths; bound by the type's cap.
		return pack.ReadBlob(ctx, r.objs, loc.Pack, pack.Entry{Type: t, ID: id, Offset: loc.Offset, Length: loc.Length, RawLength: uint32(maxLen)})
	}
	// Fetched and disk-read bytes are ours to decrypt in place.
	open := func(sealed []byte) ([]byte, error) { return r.openOwned(sealed, id, t, maxLen) }
	if r.cache == nil {
		sealed, err := fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("load %s blob %s from pack %s: %w", t, id.Short(), loc.Pack, err)
		}
		return open(sealed)
	}
	plain, err := r.cache.Get(ctx, id, fetch, open)
	if err != nil {
		return nil, fmt.Errorf("load %s blob %s from pack %s: %w", t, id.Short(), loc.Pack, err)
	}
	return plain, nil
}

// open decrypts a sealed blob. The AEAD key and associated data are bound
// to the ID, so only a holder of the file key can produce a blob that opens
// under it. Metadata blobs are also re-hashed against their ID (cheap, and a
// guard against our own bugs); data chunks skip it on this hot path, where it
// would cost a third of a cached read. `anysync check --read-data` hashes
// everything.
func (r *Repo) open(sealed []byte, id crypto.ID, t crypto.BlobType, maxLen int) ([]byte, error) {
	plain, err := r.codec.Decode(nil, sealed, id, t, maxLen)
	if err != nil {
		return nil, err
	}
	if t != crypto.BlobData && r.ids.Sum(plain) != id {
		return nil, fmt.Errorf("%s blob %s: %w", t, id.Short(), ErrCorrupt)
	}
	return plain, nil
}

// openOwned is open for sealed bytes nobody else holds (fetched, or read
// from the disk tier): it decrypts them in place, so a raw chunk's
// plaintext costs no copy and no allocation. A buffer much larger than the
// blob (a pooled one) is not kept alive by the plaintext: such blobs are
// decrypted into a new slice.
func (r *Repo) openOwned(sealed []byte, id crypto.ID, t crypto.BlobType, maxLen int) ([]byte, error) {
	if cap(sealed)-len(sealed) > len(sealed)/8 {
		return r.open(sealed, id, t, maxLen)
	}
	plain, err := r.codec.DecodeInPlace(sealed, id, t, maxLen)
	if err != nil {
		return nil, err
	}
	if t != crypto.BlobData && r.ids.Sum(plain) != id {
		return nil, fmt.Errorf("%s blob %s: %w", t, id.Short(), ErrCorrupt)
	}
	return plain, nil
}

// VerifyBlob loads a blob and checks that its plaintext hashes to its ID,
// for integrity checks that go beyond the read path.
func (r *Repo) VerifyBlob(ctx context.Context, t crypto.BlobType, id crypto.ID) error {
	plain, err := r.LoadBlob(ctx, t, id)
	if err != nil {
		return err
	}
	if r.ids.Sum(plain) != id {
		return fmt.Errorf("%s blob %s: %w", t, id.Short(), ErrCorrupt)
	}
	return nil
}

// SaveTree stores a directory and returns its ID.
func (r *Repo) SaveTree(ctx context.Context, t *tree.Tree) (crypto.ID, error) {
	b, err := t.Encode()
	if err != nil {
		return crypto.ID{}, fmt.Errorf("encode tree: %w", err)
	}
	return r.SaveBlob(ctx, crypto.BlobTree, b)
}

// LoadTree reads and decodes a directory.
func (r *Repo) LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error) {
	b, err := r.LoadBlob(ctx, crypto.BlobTree, id)
	if err != nil {
		return nil, err
	}
	t, err := tree.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("decode tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// SaveVersion stores a version blob and returns its ID.
func (r *Repo) SaveVersion(ctx context.Context, v *tree.Version) (crypto.ID, error) {
	b, err := v.Encode()
	if err != nil {
		return crypto.ID{}, fmt.Errorf("encode version: %w", err)
	}
	return r.SaveBlob(ctx, crypto.BlobVersion, b)
}

// LoadVersion reads and decodes a version blob.
func (r *Repo) LoadVersion(ctx context.Context, id crypto.ID) (*tree.Version, error) {
	b, err := r.LoadBlob(ctx, crypto.BlobVersion, id)
	if err != nil {
		return nil, err
	}
	v, err := tree.DecodeVersion(b)
	if err != nil {
		return nil, fmt.Errorf("decode version %s: %w", id.Short(), err)
	}
	return v, nil
}
