package rclonestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/anysync/anysync/store/internal/directio"
	"github.com/anysync/anysync/store/objstore"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	rfs "github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/fspath"
	"github.com/rclone/rclone/fs/object"

	// The only backends compiled in: local folders and S3-compatible
	// storage. backend/all would add ~70 backends and their dependencies.
	_ "github.com/rclone/rclone/backend/local"
	_ "github.com/rclone/rclone/backend/s3"
)

// tmpDir holds uploads in progress on backends that can rename. Its name is
// not a valid shard, so listings never see it.
const tmpDir = ".tmp"

// staleTempAge is how old an upload in tmpDir must be before rclonestore.New
// deletes it as left over from a crash.
const staleTempAge = 24 * time.Hour

// handleCacheSize bounds the cache of object handles GetRange uses to skip a
// metadata request (a HEAD on S3) per read.
const handleCacheSize = 4096

// Rclone is an objstore.ObjectStore on any rclone remote. Objects live at
// "<first two characters>/<name>" under the remote's root.
type Store struct {
	f       rfs.Fs
	move    func(ctx context.Context, src rfs.Object, remote string) (rfs.Object, error)
	handles *lru.Cache[string, rfs.Object]
	// localRoot is the folder of a local-backend remote, whose uploads
	// are fsynced here because rclone's local backend never syncs; empty
	// for other backends.
	localRoot string
	// directPuts counts uploads written with direct I/O (putLocal), for
	// tests.
	directPuts atomic.Int64
	// directReads counts ranges of local files read with direct I/O, for
	// tests; noDirectReads is set once the folder refused it.
	directReads   atomic.Int64
	noDirectReads atomic.Bool
}

var _ objstore.ObjectStore = (*Store)(nil)

// rclonestore.New opens an rclone remote given as a path or connection string:
// "/path/to/dir", ":local:/path", or
// ":s3,provider=Other,endpoint='http://host:port',access_key_id=...,secret_access_key=...:bucket/prefix".
// Only the local and s3 backends are available. No rclone config file is
// read; named remotes ("name:path") need rclonestore.NewWithConfig. Backend
// options may also come from RCLONE_<BACKEND>_<OPTION> environment
// variables, as in rclone.
func New(ctx context.Context, remote string) (*Store, error) {
	return NewWithConfig(ctx, remote, "")
}

// rclonestore.NewWithConfig is rclonestore.New, resolving a named remote ("name:path")
// from the given rclone config file (unencrypted INI, as written by
// `rclone config`). configFile may be empty for no config file.
func NewWithConfig(ctx context.Context, remote, configFile string) (*Store, error) {
	quietRcloneLogs()
	parsed, err := fspath.Parse(remote)
	if err != nil {
		return nil, fmt.Errorf("open remote: %w", err)
	}
	name, root := parsed.Name, parsed.Path
	// Connection strings carry credentials: errors name the remote
	// without its options.
	shown := name + ":" + root
	if name == "" {
		shown = root
	}
	var section configmap.Simple
	var backend string
	switch {
	case name == "":
		backend, name = "local", "local"
	case strings.HasPrefix(name, ":"):
		backend = name[1:]
	default:
		if configFile == "" {
			return nil, fmt.Errorf("open remote %s: named remote %q needs an rclone config file", shown, name)
		}
		section, err = readConfigSection(configFile, name)
		if err != nil {
			return nil, fmt.Errorf("open remote %s: %w", shown, err)
		}
		backend = section["type"]
	}
	info, err := rfs.Find(backend)
	if err != nil {
		return nil, fmt.Errorf("open remote %s: backend %q (only local and s3 are built in): %w", shown, backend, err)
	}
	// Connection-string options override the config file section. Passing
	// no config name keeps rclone away from its global config file.
	merged := configmap.Simple{}
	for k, v := range section {
		if k != "type" {
			merged[k] = v
		}
	}
	for k, v := range parsed.Config {
		merged[k] = v
	}
	m := rfs.ConfigMap(info.Prefix, info.Options, "", merged)
	f, err := info.NewFs(ctx, name, root, m)
	if errors.Is(err, rfs.ErrorIsFile) {
		return nil, fmt.Errorf("open remote %s: root is a file, not a folder", shown)
	}
	if err != nil {
		return nil, fmt.Errorf("open remote %s: %w", shown, err)
	}
	handles, err := lru.New[string, rfs.Object](handleCacheSize)
	if err != nil {
		return nil, fmt.Errorf("open remote %s: %w", shown, err)
	}
	r := &Store{f: f, move: f.Features().Move, handles: handles}
	if f.Features().IsLocal {
		r.localRoot = filepath.FromSlash(f.Root())
	}
	if r.move != nil {
		if err := r.removeStaleTemps(ctx); err != nil {
			return nil, fmt.Errorf("open remote %s: %w", shown, err)
		}
	}
	return r, nil
}

// String returns the remote, for logs.
func (r *Store) String() string { return rfs.ConfigString(r.f) }

// Put implements objstore.ObjectStore. On backends with server-side move (local
// folders) the data goes to a temporary name first and is renamed into
// place; elsewhere (S3) a PUT is atomic by itself. Either way the stream is
// checked to be exactly size bytes so no upload of the wrong length
// completes.
func (r *Store) Put(ctx context.Context, name string, in io.Reader, size int64) error {
	if err := objstore.ValidateName(name); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d: %w", name, size, objstore.ErrSizeMismatch)
	}
	dst := shardPath(name)
	target := dst
	if r.move != nil {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
		target = tmpDir + "/" + name + "." + hex.EncodeToString(rnd[:])
	}
	src := object.NewStaticObjectInfo(target, time.Now(), size, true, nil, r.f)
	er := objstore.NewExactReader(ctx, in, size)
	if size == 0 {
		// An empty HTTP body is never read, so check r up front.
		if _, err := er.Read(nil); err != io.EOF {
			return fmt.Errorf("put %s: %w", name, err)
		}
	}
	if r.localRoot != "" && r.move != nil {
		err := r.putLocal(ctx, name, target, dst, er, size)
		if !errors.Is(err, directio.ErrUnsupported) {
			return err
		}
	}
	var body io.Reader = er
	if r.localRoot != "" {
		body = fileWrites{er}
	}
	obj, err := r.f.Put(ctx, body, src)
	if err != nil {
		if r.move != nil {
			r.removeQuietly(ctx, target)
		}
		if er.Err() != nil {
			// Our own verdict on the stream, which the backend may
			// have flattened into a transport error.
			err = er.Err()
		}
		return fmt.Errorf("put %s: %w", name, err)
	}
	if obj.Size() != size {
		_ = obj.Remove(ctx)
		return fmt.Errorf("put %s: stored %d bytes, want %d: %w", name, obj.Size(), size, objstore.ErrSizeMismatch)
	}
	if err := r.syncLocal(target, false); err != nil {
		_ = obj.Remove(ctx)
		return fmt.Errorf("put %s: %w", name, err)
	}
	if r.move != nil {
		moved, err := r.move(ctx, obj, dst)
		if err != nil {
			_ = obj.Remove(ctx)
			return fmt.Errorf("put %s: move into place: %w", name, err)
		}
		obj = moved
		if err := r.syncLocal(path.Dir(dst), true); err != nil {
			return fmt.Errorf("put %s: %w", name, err)
		}
	}
	r.handles.Add(name, obj)
	return nil
}

// putLocal writes an upload into a local folder itself, with direct I/O
// (writeDirect), then renames it into place as Put does. It returns
// directio.ErrUnsupported, having read nothing, where the file system refuses direct
// I/O.
func (r *Store) putLocal(ctx context.Context, name, target, dst string, er *objstore.ExactReader, size int64) error {
	tmp := filepath.Join(r.localRoot, filepath.FromSlash(target))
	final := filepath.Join(r.localRoot, filepath.FromSlash(dst))
	if err := errors.Join(os.MkdirAll(filepath.Dir(tmp), 0o755), os.MkdirAll(filepath.Dir(final), 0o755)); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := writeDirect(tmp, er, size); err != nil {
		if errors.Is(err, directio.ErrUnsupported) {
			return err
		}
		if er.Err() != nil {
			err = er.Err()
		}
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("put %s: move into place: %w", name, err)
	}
	if err := r.syncLocal(path.Dir(dst), true); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	obj, err := r.f.NewObject(ctx, dst)
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	r.handles.Add(name, obj)
	r.directPuts.Add(1)
	return nil
}

// filePiece is the size of the writes to a local file. A chunk reader's
// 1 MiB chunks (the server's upload messages) are written in pieces of
// 32 KiB, the size io.Copy used before: a write of 1 MiB made Linux (6.18)
// back the page cache with 1 MiB folios, and on a VM whose free memory the
// host reclaims (virtio-balloon free page reporting, Firecracker) those
// come from memory the host must fault in again page by page, which made
// the server spend 30% more CPU per pack; folios of 32 KiB and less come
// from the per-CPU free lists, recently used memory. (Since packs leave
// the page cache once synced, dropCache, both sizes measure the same;
// 32 KiB stays, as the size that never did worse.) The pieces cost
// nothing more than io.Copy's buffer did, without its copy.
const filePiece = 32 << 10

// fileWrites is the body of a Put to rclone's local backend, which copies
// it to the file with io.Copy: WriteTo hands the chunks over in pieces.
type fileWrites struct{ *objstore.ExactReader }

func (f fileWrites) WriteTo(w io.Writer) (int64, error) { return f.ExactReader.WriteTo(pieceWriter{w}) }

// pieceWriter writes at most filePiece bytes per Write to the writer under.
type pieceWriter struct{ w io.Writer }

func (p pieceWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		m, err := p.w.Write(b[:min(len(b), filePiece)])
		n += m
		if err != nil {
			return n, err
		}
		b = b[m:]
	}
	return n, nil
}

// syncLocal makes an upload to a local folder durable before it is renamed
// into place (file) and after (its folder), so a server crash cannot lose a
// pack that a committed version already points at. Once durable, a file's
// pages leave the page cache (dropCache). A path the local backend
// stored under a different encoding is not found; it is left unsynced rather
// than failing every upload.
func (r *Store) syncLocal(remote string, dir bool) error {
	if r.localRoot == "" || (dir && runtime.GOOS == "windows") {
		return nil
	}
	flag := os.O_RDWR
	if dir {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(filepath.Join(r.localRoot, filepath.FromSlash(remote)), flag, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", remote, err)
	}
	err = f.Sync()
	if err == nil && !dir {
		dropCache(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", remote, err)
	}
	return nil
}

// removeQuietly deletes a temporary upload if the backend left one behind.
func (r *Store) removeQuietly(ctx context.Context, remote string) {
	if o, err := r.f.NewObject(ctx, remote); err == nil {
		_ = o.Remove(ctx)
	}
}

// GetRange implements objstore.ObjectStore. Handles of recently used objects are
// cached (objects are immutable), so a read is one request; a handle that
// went stale because the object was deleted elsewhere is dropped and looked
// up again once.
func (r *Store) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := objstore.ValidateName(name); err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	obj, cached := r.handles.Get(name)
	for {
		if !cached {
			var err error
			obj, err = r.lookup(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("get %s: %w", name, err)
			}
		}
		n, err := objstore.CheckRange(name, obj.Size(), off, length)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return io.NopCloser(strings.NewReader("")), nil
		}
		if r.localRoot != "" && !r.noDirectReads.Load() {
			rc, err := readDirect(filepath.Join(r.localRoot, filepath.FromSlash(shardPath(name))), off, n)
			switch {
			case err == nil:
				r.directReads.Add(1)
				return rc, nil
			case errors.Is(err, directio.ErrUnsupported):
				r.noDirectReads.Store(true)
			case errors.Is(err, fs.ErrNotExist):
				r.handles.Remove(name)
				return nil, fmt.Errorf("get %s: %w", name, mapNotFound(err))
			default:
				return nil, fmt.Errorf("get %s: %w", name, err)
			}
		}
		rc, err := obj.Open(ctx, &rfs.RangeOption{Start: off, End: off + n - 1})
		if err != nil {
			err = mapNotFound(err)
			if cached && errors.Is(err, objstore.ErrNotFound) {
				r.handles.Remove(name)
				cached = false
				continue
			}
			return nil, fmt.Errorf("get %s: %w", name, err)
		}
		return &lengthReader{rc: rc, want: n}, nil
	}
}

// lookup finds an object and refreshes its cached handle.
func (r *Store) lookup(ctx context.Context, name string) (rfs.Object, error) {
	obj, err := r.f.NewObject(ctx, shardPath(name))
	if err != nil {
		r.handles.Remove(name)
		return nil, mapNotFound(err)
	}
	r.handles.Add(name, obj)
	return obj, nil
}

// Stat implements objstore.ObjectStore. It always asks the backend.
func (r *Store) Stat(ctx context.Context, name string) (objstore.ObjectInfo, error) {
	if err := objstore.ValidateName(name); err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	obj, err := r.lookup(ctx, name)
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return objstore.ObjectInfo{Name: name, Size: obj.Size()}, nil
}

// List implements objstore.ObjectStore, with one recursive listing where the backend
// has it (S3) and otherwise the root plus each shard folder.
func (r *Store) List(ctx context.Context, fn func(objstore.ObjectInfo) error) error {
	var fnErr error
	visit := func(entries rfs.DirEntries) error {
		for _, e := range entries {
			o, ok := e.(rfs.Object)
			if !ok {
				continue
			}
			name, ok := nameFromPath(o.Remote())
			if !ok {
				continue
			}
			if err := fn(objstore.ObjectInfo{Name: name, Size: o.Size()}); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	}
	if listR := r.f.Features().ListR; listR != nil {
		err := listR(ctx, "", visit)
		if fnErr != nil {
			return fnErr
		}
		if err != nil && !errors.Is(err, rfs.ErrorDirNotFound) {
			return fmt.Errorf("list: %w", err)
		}
		return nil
	}
	top, err := r.f.List(ctx, "")
	if errors.Is(err, rfs.ErrorDirNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	for _, e := range top {
		d, ok := e.(rfs.Directory)
		if !ok || len(d.Remote()) > 2 || objstore.ValidateName(d.Remote()) != nil {
			continue
		}
		entries, err := r.f.List(ctx, d.Remote())
		if errors.Is(err, rfs.ErrorDirNotFound) {
			continue // removed while we listed
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", d.Remote(), err)
		}
		if err := visit(entries); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements objstore.ObjectStore.
func (r *Store) Delete(ctx context.Context, name string) error {
	if err := objstore.ValidateName(name); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	r.handles.Remove(name)
	obj, err := r.f.NewObject(ctx, shardPath(name))
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, mapNotFound(err))
	}
	if err := obj.Remove(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", name, mapNotFound(err))
	}
	return nil
}

// removeStaleTemps deletes uploads a crashed process left in tmpDir. Recent
// ones may belong to another live process sharing the folder, so they stay.
func (r *Store) removeStaleTemps(ctx context.Context) error {
	entries, err := r.f.List(ctx, tmpDir)
	if errors.Is(err, rfs.ErrorDirNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list temporary uploads: %w", err)
	}
	for _, e := range entries {
		o, ok := e.(rfs.Object)
		if !ok || time.Since(o.ModTime(ctx)) < staleTempAge {
			continue
		}
		if err := o.Remove(ctx); err != nil && !errors.Is(mapNotFound(err), objstore.ErrNotFound) {
			return fmt.Errorf("remove stale upload %s: %w", o.Remote(), err)
		}
	}
	return nil
}

// mapNotFound turns the backends' ways of saying "no such object" into
// objstore.ErrNotFound, keeping the original text.
func mapNotFound(err error) error {
	if errors.Is(err, rfs.ErrorObjectNotFound) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (%v)", objstore.ErrNotFound, err)
	}
	return err
}

// quietRcloneLogs routes rclone's log output (process-wide in rclone) to a
// handler that drops everything below error level, so notices such as
// "Removing partially written file" on an aborted upload don't reach
// stderr. Errors still go to the default slog logger. Done once per
// process; rclone's logger is not safe to swap while in use.
var quietRcloneLogs = sync.OnceFunc(func() {
	rfs.SetLogger(errorsOnly{})
})

// errorsOnly is an slog.Handler forwarding error-level records to whatever
// slog.Default is at the time of logging.
type errorsOnly struct {
	with []func(slog.Handler) slog.Handler // WithAttrs/WithGroup, in order
}

func (h errorsOnly) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (h errorsOnly) Handle(ctx context.Context, rec slog.Record) error {
	dst := slog.Default().Handler()
	for _, w := range h.with {
		dst = w(dst)
	}
	return dst.Handle(ctx, rec)
}

func (h errorsOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return errorsOnly{with: append(h.with[:len(h.with):len(h.with)], func(d slog.Handler) slog.Handler { return d.WithAttrs(attrs) })}
}

func (h errorsOnly) WithGroup(name string) slog.Handler {
	return errorsOnly{with: append(h.with[:len(h.with):len(h.with)], func(d slog.Handler) slog.Handler { return d.WithGroup(name) })}
}
