//go:build unix

package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/tree"
)

// The file cache remembers, per backed-up folder, the tree of every
// directory as last committed, and for each entry the inode it came from
// and whether its timestamps can be trusted. A file whose size, mtime,
// ctime, inode and mode match a trusted entry is taken from the cache
// without being read. docs/backup.md specifies the bytes.

// errCacheCorrupt means a cache file does not parse; the backup then reads
// every file, as on a first run.
var errCacheCorrupt = errors.New("backup cache is corrupt")

var cacheMagic = [4]byte{'A', 'S', 'B', 'C'}

const (
	cacheVersion = 1
	// entryTrusted marks an entry whose ctime was old enough when it was
	// read that a later change must show as a new ctime.
	entryTrusted = 1
	// minRecordLen is the smallest encoded directory record: empty path,
	// tree ID, tree length, count.
	minRecordLen = 1 + crypto.IDSize + 1 + 1
)

// entryMeta is what the cache stores beside each tree entry.
type entryMeta struct {
	Ino     uint64
	Trusted bool
}

// cacheRecord is one directory of the cache.
type cacheRecord struct {
	ID   crypto.ID
	Tree []byte // canonical tree encoding; ID is its blob ID
	Meta []entryMeta
}

// decodeCache parses a cache file into records by relative directory path
// ("" is the backed-up folder itself). It checks the checksum and the
// structure, and accepts only the canonical encoding (sorted paths,
// minimal varints); tree bytes are decoded and checked against their ID only when
// used (cachedDir).
func decodeCache(b []byte) (map[string]*cacheRecord, error) {
	if len(b) < len(cacheMagic)+1+sha256.Size || [4]byte(b) != cacheMagic {
		return nil, fmt.Errorf("%w: bad header", errCacheCorrupt)
	}
	if b[4] != cacheVersion {
		return nil, fmt.Errorf("%w: version %d", errCacheCorrupt, b[4])
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", errCacheCorrupt)
	}
	p := body[5:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) { // minimal encodings only
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	take := func(n uint64) ([]byte, bool) {
		if n > uint64(len(p)) {
			return nil, false
		}
		out := p[:n:n]
		p = p[n:]
		return out, true
	}
	count, ok := next()
	if !ok || count > uint64(len(p)/minRecordLen) {
		return nil, fmt.Errorf("%w: bad record count", errCacheCorrupt)
	}
	out := make(map[string]*cacheRecord, count)
	var prev string
	for i := range count {
		bad := func(what string) error {
			return fmt.Errorf("%w: record %d: %s", errCacheCorrupt, i, what)
		}
		n, ok := next()
		if !ok {
			return nil, bad("path length")
		}
		path, ok := take(n)
		if !ok {
			return nil, bad("path")
		}
		rec := &cacheRecord{}
		id, ok := take(crypto.IDSize)
		if !ok {
			return nil, bad("tree ID")
		}
		copy(rec.ID[:], id)
		if n, ok = next(); !ok {
			return nil, bad("tree length")
		}
		if rec.Tree, ok = take(n); !ok {
			return nil, bad("tree")
		}
		nm, ok := next()
		if !ok || nm > uint64(len(p)/2) {
			return nil, bad("entry count")
		}
		rec.Meta = make([]entryMeta, nm)
		for j := range rec.Meta {
			ino, ok := next()
			if !ok || len(p) == 0 {
				return nil, bad("entry")
			}
			rec.Meta[j] = entryMeta{Ino: ino, Trusted: p[0]&entryTrusted != 0}
			if p[0]&^entryTrusted != 0 {
				return nil, bad("entry flags")
			}
			p = p[1:]
		}
		if i > 0 && string(path) <= prev {
			return nil, bad("paths not sorted and unique")
		}
		prev = string(path)
		out[prev] = rec
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCacheCorrupt, len(p))
	}
	return out, nil
}

// encodeCache returns the cache file for records.
func encodeCache(records map[string]*cacheRecord) []byte {
	paths := make([]string, 0, len(records))
	size := 5 + 10 + sha256.Size
	for p, r := range records {
		paths = append(paths, p)
		size += 10 + len(p) + crypto.IDSize + 10 + len(r.Tree) + 10 + 11*len(r.Meta)
	}
	slices.Sort(paths)
	b := make([]byte, 0, size)
	b = append(b, cacheMagic[:]...)
	b = append(b, cacheVersion)
	b = binary.AppendUvarint(b, uint64(len(paths)))
	for _, p := range paths {
		r := records[p]
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		b = append(b, r.ID[:]...)
		b = binary.AppendUvarint(b, uint64(len(r.Tree)))
		b = append(b, r.Tree...)
		b = binary.AppendUvarint(b, uint64(len(r.Meta)))
		for _, m := range r.Meta {
			b = binary.AppendUvarint(b, m.Ino)
			var f byte
			if m.Trusted {
				f = entryTrusted
			}
			b = append(b, f)
		}
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// cachedDir is a decoded, verified cache record.
type cachedDir struct {
	id   crypto.ID
	enc  []byte
	tree *tree.Tree
	meta []entryMeta
}

// find returns the cached entry called name and its metadata.
func (d *cachedDir) find(name string) (*tree.Entry, entryMeta, bool) {
	if d == nil {
		return nil, entryMeta{}, false
	}
	i, ok := slices.BinarySearchFunc(d.tree.Entries, name, func(e tree.Entry, n string) int {
		switch {
		case e.Name < n:
			return -1
		case e.Name > n:
			return 1
		}
		return 0
	})
	if !ok {
		return nil, entryMeta{}, false
	}
	return &d.tree.Entries[i], d.meta[i], true
}

// fileCache is the cache of one backed-up folder: the previous run's
// records, read lazily, and this run's, written after a commit.
type fileCache struct {
	path string
	idOf func([]byte) crypto.ID

	old map[string]*cacheRecord

	mu  sync.Mutex
	new map[string]*cacheRecord
}

// openCache reads the cache at path. A missing or corrupt cache yields an
// empty one (the backup reads every file); corrupt is reported through
// the returned error while the cache is still usable.
func openCache(path string, idOf func([]byte) crypto.ID) (*fileCache, error) {
	c := &fileCache{path: path, idOf: idOf, old: map[string]*cacheRecord{}, new: map[string]*cacheRecord{}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read backup cache %s: %w", path, err)
	}
	old, err := decodeCache(b)
	if err != nil {
		return c, fmt.Errorf("backup cache %s: %w", path, err)
	}
	c.old = old
	return c, nil
}

// dir returns the cached directory at rel, or nil if there is none or it
// does not verify (its tree must decode, hash to its ID, and have one
// metadata record per entry).
func (c *fileCache) dir(rel string) *cachedDir {
	rec := c.old[rel]
	if rec == nil {
		return nil
	}
	if c.idOf(rec.Tree) != rec.ID {
		return nil
	}
	t, err := tree.DecodeTree(rec.Tree)
	if err != nil || len(t.Entries) != len(rec.Meta) {
		return nil
	}
	return &cachedDir{id: rec.ID, enc: rec.Tree, tree: t, meta: rec.Meta}
}

// put records directory rel as this run stored it.
func (c *fileCache) put(rel string, id crypto.ID, enc []byte, meta []entryMeta) {
	c.mu.Lock()
	c.new[rel] = &cacheRecord{ID: id, Tree: enc, Meta: meta}
	c.mu.Unlock()
}

// save replaces the cache file with this run's records (rename over it).
func (c *fileCache) save() error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	b := encodeCache(c.new)
	c.mu.Unlock()
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create backup cache folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write backup cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	// No fsync: a cache torn by a crash fails its checksum and is ignored
	// (the next run reads every file), and one left at an older run names
	// chunks that are committed all the same.
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write backup cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write backup cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return fmt.Errorf("replace backup cache: %w", err)
	}
	return nil
}
