package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
)

// memContent stores content as one chunk per file in memory and serves it
// back as placeholders, checking the chunk list against the size as the
// daemon's content source does.
type memContent struct {
	mu     sync.Mutex
	chunks map[crypto.ID][]byte
}

func (m *memContent) store(_ uint64, r ContentReader) ([]byte, int64, error) {
	b, err := io.ReadAll(r)
	if err != nil || len(b) == 0 {
		return nil, 0, err
	}
	id := crypto.ID(sha256.Sum256(b))
	m.mu.Lock()
	m.chunks[id] = b
	m.mu.Unlock()
	return localdb.EncodeChunks([]localdb.ChunkRef{{ID: id, Length: uint32(len(b))}}), int64(len(b)), nil
}

func (m *memContent) NewReader(chunks []byte, size int64) (io.ReaderAt, error) {
	refs, err := localdb.DecodeChunks(chunks)
	if err != nil {
		return nil, err
	}
	var all []byte
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range refs {
		all = append(all, m.chunks[r.ID]...)
	}
	if int64(len(all)) != size {
		return nil, fmt.Errorf("chunk list of %d bytes for a file of %d: %w", len(all), size, localdb.ErrCorrupt)
	}
	return bytes.NewReader(all), nil
}

func newMemContentFS(t *testing.T) (*FS, *memContent) {
	t.Helper()
	mc := &memContent{chunks: map[crypto.ID][]byte{}}
	return newTestFSWith(t, localdb.OpenBatched, mc), mc
}

// createWritten creates a file holding data and closes it.
func createWritten(t *testing.T, f *FS, name string, data []byte) uint64 {
	t.Helper()
	ctx := context.Background()
	a, h, err := f.Create(ctx, localdb.RootIno, name, syscall.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

// checkPendingUploads checks that ino is pending with content want, and
// still reads want once uploaded.
func checkPendingUploads(t *testing.T, f *FS, mc *memContent, ino uint64, want []byte) {
	t.Helper()
	n, err := f.db.Get(context.Background(), ino)
	if err != nil {
		t.Fatal(err)
	}
	if n.Flags&localdb.FlagContent == 0 {
		t.Fatalf("written file is not pending: flags %d, size %d, %d chunk bytes", n.Flags, n.Size, len(n.Chunks))
	}
	if got := readAll(t, f, ino); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes before upload, want %d", len(got), len(want))
	}
	uploadPending(t, f, mc)
	if got := readAll(t, f, ino); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes after upload, want %d", len(got), len(want))
	}
}

// uploadPending stores and records every pending file.
func uploadPending(t *testing.T, f *FS, mc *memContent) {
	t.Helper()
	ctx := context.Background()
	pending, err := f.db.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inos []uint64
	for _, n := range pending {
		inos = append(inos, n.Ino)
	}
	if err := upload(ctx, f, inos, mc.store); err != nil {
		t.Fatalf("upload pending: %v", err)
	}
}

// appendThenCheck appends through a new O_APPEND handle, closes it and
// the handles still open, and checks that the file is pending with first
// and the appended bytes, before and after an upload.
func appendThenCheck(t *testing.T, f *FS, mc *memContent, ino uint64, first []byte, open ...*Handle) {
	t.Helper()
	ctx := context.Background()
	w, err := f.Open(ctx, ino, syscall.O_WRONLY|syscall.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	second := []byte("appended")
	if _, err := w.WriteAt(ctx, second, 0); err != nil {
		t.Fatal(err)
	}
	for _, h := range append([]*Handle{w}, open...) {
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkPendingUploads(t, f, mc, ino, append(first, second...))
}

// withWrittenFile runs fn, for an inline and a staging-file size, on a new
// FS holding one closed, pending file whose content is first.
func withWrittenFile(t *testing.T, fn func(t *testing.T, f *FS, mc *memContent, ino uint64, first []byte)) {
	for _, size := range []int{1000, InlineMax + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			f, mc := newMemContentFS(t)
			first := bytes.Repeat([]byte("1"), size)
			fn(t, f, mc, createWritten(t, f, "f", first), first)
		})
	}
}

// TestUploadBetweenCreateAndWrite: an upload that looks at a file just
// created, before its first write, must not record the empty content over
// what is then written (the soak test found rows whose size was the
// written one and whose chunk list was empty).
func TestUploadBetweenCreateAndWrite(t *testing.T) {
	for _, size := range []int{1000, InlineMax + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			f, mc := newMemContentFS(t)
			ctx := context.Background()
			f.hooks.created = func(ino uint64) {
				st, err := f.StoreContent(ctx, []uint64{ino}, mc.store)
				if err != nil {
					t.Errorf("store content of the new file: %v", err)
				}
				if err := st.Record(ctx); err != nil && !errors.Is(err, ErrBusy) {
					t.Errorf("record the new file: %v", err)
				}
			}
			a, h, err := f.Create(ctx, localdb.RootIno, "new", syscall.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.hooks.created = nil
			data := bytes.Repeat([]byte("d"), size)
			if _, err := h.WriteAt(ctx, data, 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Release(ctx); err != nil {
				t.Fatal(err)
			}
			checkPendingUploads(t, f, mc, a.Ino, data)
		})
	}
}

// TestOpenWhileRecording: a file opened for reading while an upload
// records its content, then appended to through a second handle, keeps the
// appended data pending (an open that read the row just before it was
// recorded believed the row still recorded pending content, and the
// append was never marked).
func TestOpenWhileRecording(t *testing.T) {
	withWrittenFile(t, func(t *testing.T, f *FS, mc *memContent, ino uint64, first []byte) {
		ctx := context.Background()
		type opened struct {
			h   *Handle
			err error
		}
		readerc := make(chan opened, 1)
		f.hooks.recording = func() {
			go func() {
				h, err := f.Open(ctx, ino, syscall.O_RDONLY)
				readerc <- opened{h, err}
			}()
			// Let the open run now if it can; with the fix it waits
			// for the recording to end.
			select {
			case r := <-readerc:
				readerc <- r
			case <-time.After(100 * time.Millisecond):
			}
		}
		uploadPending(t, f, mc)
		f.hooks.recording = nil
		r := <-readerc
		if r.err != nil {
			t.Fatalf("open for reading during the upload: %v", r.err)
		}
		appendThenCheck(t, f, mc, ino, first, r.h)
	})
}

// TestOpenedUnreadWhileRecording: an open that registered before an upload
// began recording its file, and reads the row only while the upload
// records (here: between the open files and the closed ones), reads the
// recorded row; a write through a later handle is then marked pending.
func TestOpenedUnreadWhileRecording(t *testing.T) {
	withWrittenFile(t, func(t *testing.T, f *FS, mc *memContent, ino uint64, first []byte) {
		ctx := context.Background()
		st, err := f.StoreContent(ctx, []uint64{ino}, mc.store)
		if err != nil || st.Len() != 1 {
			t.Fatalf("store: %d stored, %v", st.Len(), err)
		}
		// Open's first half: registered, the row not read yet.
		of := f.acquire(ino, false)
		r := &Handle{fs: f, of: of}
		var prepErr error
		f.hooks.recording = func() {
			of.mu.Lock()
			prepErr = f.prepare(ctx, of, false, false)
			of.mu.Unlock()
		}
		if err := st.Record(ctx); err != nil {
			t.Fatal(err)
		}
		f.hooks.recording = nil
		if prepErr != nil {
			t.Fatalf("open's second half during the recording: %v", prepErr)
		}
		appendThenCheck(t, f, mc, ino, first, r)
	})
}
