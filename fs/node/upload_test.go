package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/fs/localdb"
)

// TestUploadBatch uploads a batch holding a small file, a large one (a
// staging file), a file open for writing and one open for reading: the
// writer's file is skipped with ErrBusy, the others are committed in one
// go, the closed large file's staging file is deleted and the reader's is
// kept until it closes.
func TestUploadBatch(t *testing.T) {
	f := newTestFS(t)
	ctx := context.Background()
	write := func(name string, data []byte) (uint64, *Handle) {
		t.Helper()
		a, h, err := f.Create(ctx, localdb.RootIno, name, syscall.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(ctx, data, 0); err != nil {
			t.Fatal(err)
		}
		return a.Ino, h
	}
	closeH := func(h *Handle) {
		t.Helper()
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	small := []byte("small file")
	large := bytes.Repeat([]byte("L"), InlineMax+1)
	smallIno, h := write("small", small)
	closeH(h)
	largeIno, h := write("large", large)
	closeH(h)
	readIno, h := write("read", large)
	closeH(h)
	reader, err := f.Open(ctx, readIno, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	busyIno, writer := write("busy", small)

	largeRow, err := f.db.Get(ctx, largeIno)
	if err != nil || largeRow.Staging == "" {
		t.Fatalf("large file has no staging file: %q, %v", largeRow.Staging, err)
	}
	var stored [][]byte
	store := func(_ uint64, r ContentReader) ([]byte, int64, error) {
		b, err := io.ReadAll(r)
		stored = append(stored, b)
		return localdb.EncodeChunks([]localdb.ChunkRef{{Length: uint32(len(b))}}), int64(len(b)), err
	}
	err = upload(ctx, f, []uint64{smallIno, largeIno, readIno, busyIno}, store)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Upload with a file open for writing: %v, want ErrBusy", err)
	}
	if len(stored) != 3 {
		t.Fatalf("stored %d files, want 3", len(stored))
	}
	for _, c := range []struct {
		ino     uint64
		size    int
		pending bool
	}{{smallIno, len(small), false}, {largeIno, len(large), false}, {readIno, len(large), false}, {busyIno, len(small), true}} {
		n, err := f.db.Get(ctx, c.ino)
		if err != nil {
			t.Fatal(err)
		}
		if pending := n.Flags&localdb.FlagContent != 0; pending != c.pending {
			t.Errorf("%s: pending %v, want %v", n.Name, pending, c.pending)
		}
		if !c.pending && (n.Size != int64(c.size) || n.Flags&localdb.FlagSynced == 0 || len(n.Chunks) == 0 || n.Inline != nil) {
			t.Errorf("%s after upload: size %d, flags %d, %d chunk bytes, %d inline bytes", n.Name, n.Size, n.Flags, len(n.Chunks), len(n.Inline))
		}
	}
	if _, err := os.Stat(f.stagingPath(largeRow.Staging)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging file of the closed large file: %v, want it deleted", err)
	}
	// The reader still reads its content from the staging file it holds.
	buf := make([]byte, len(large))
	if n, err := reader.ReadAt(ctx, buf, 0); err != nil || n != len(large) || !bytes.Equal(buf, large) {
		t.Fatalf("reader after upload: %d bytes, %v", n, err)
	}
	closeH(reader)
	closeH(writer)
	// Once closed, the busy file uploads.
	if err := upload(ctx, f, []uint64{busyIno}, store); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.db.Get(ctx, busyIno); n.Flags&localdb.FlagContent != 0 {
		t.Fatal("busy file still pending after it was closed and uploaded")
	}
}

// TestUploadBatchFileDeleted deletes a large file of a batch while an
// earlier file of the batch is being stored: its staging file is gone,
// and the batch goes on without it instead of failing.
func TestUploadBatchFileDeleted(t *testing.T) {
	f := newTestFS(t)
	ctx := context.Background()
	var inos []uint64
	for i, size := range []int{10, InlineMax + 1, 20} {
		a, h, err := f.Create(ctx, localdb.RootIno, fmt.Sprintf("f%d", i), syscall.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(ctx, bytes.Repeat([]byte{'x'}, size), 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, a.Ino)
	}
	calls := 0
	store := func(_ uint64, r ContentReader) ([]byte, int64, error) {
		calls++
		if calls == 1 {
			if err := f.Unlink(ctx, localdb.RootIno, "f1"); err != nil {
				t.Errorf("unlink during upload: %v", err)
			}
		}
		b, err := io.ReadAll(r)
		return localdb.EncodeChunks([]localdb.ChunkRef{{Length: uint32(len(b))}}), int64(len(b)), err
	}
	if err := upload(ctx, f, inos, store); err != nil {
		t.Fatalf("Upload with a file deleted meanwhile: %v", err)
	}
	if calls != 2 {
		t.Fatalf("stored %d files, want 2 (the deleted one skipped)", calls)
	}
	for _, ino := range []uint64{inos[0], inos[2]} {
		if n, err := f.db.Get(ctx, ino); err != nil || n.Flags&localdb.FlagContent != 0 {
			t.Fatalf("node %d after upload: flags %d, %v", ino, n.Flags, err)
		}
	}
}

// upload stores and records at once, as the syncer does once the packs
// are stored.
func upload(ctx context.Context, f *FS, inos []uint64, store StoreFunc) error {
	st, err := f.StoreContent(ctx, inos, store)
	return errors.Join(err, st.Record(ctx))
}

// TestStoredHoldsUntilRecorded: stored content is recorded only by Record
// (the syncer stores the packs first), Release records nothing, and until
// either a writer of a stored file waits, and says so.
func TestStoredHoldsUntilRecorded(t *testing.T) {
	f := newTestFS(t)
	ctx := context.Background()
	var inos []uint64
	for i := range 2 {
		a, h, err := f.Create(ctx, localdb.RootIno, fmt.Sprintf("f%d", i), syscall.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(ctx, []byte("content"), 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, a.Ino)
	}
	store := func(_ uint64, r ContentReader) ([]byte, int64, error) {
		b, err := io.ReadAll(r)
		return localdb.EncodeChunks([]localdb.ChunkRef{{Length: uint32(len(b))}}), int64(len(b)), err
	}
	pendingNow := func() int {
		ps, err := f.db.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}

	st, err := f.StoreContent(ctx, inos, store)
	if err != nil || st.Len() != 2 {
		t.Fatalf("StoreContent: %d stored, %v", st.Len(), err)
	}
	if n := pendingNow(); n != 2 {
		t.Fatalf("%d of 2 files recorded before Record", 2-n)
	}
	st.Release()
	if n := pendingNow(); n != 2 {
		t.Fatalf("after Release %d files are pending, want 2", n)
	}

	st, err = f.StoreContent(ctx, inos, store)
	if err != nil {
		t.Fatal(err)
	}
	if f.WriterWaiting() {
		t.Fatal("a writer waits before anyone opened a file")
	}
	opened := make(chan error, 1)
	go func() {
		h, err := f.Open(ctx, inos[0], syscall.O_WRONLY|syscall.O_TRUNC)
		if err == nil {
			err = h.Release(ctx)
		}
		opened <- err
	}()
	deadline := time.After(10 * time.Second)
	for !f.WriterWaiting() {
		select {
		case err := <-opened:
			t.Fatalf("a writer opened a file held for recording (%v)", err)
		case <-deadline:
			t.Fatal("a writer of a held file does not count as waiting")
		case <-time.After(time.Millisecond):
		}
	}
	if err := st.Record(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if f.WriterWaiting() {
		t.Fatal("the writer still counts as waiting after it opened")
	}
	// f0 is pending again: the writer truncated it.
	if n, err := f.db.Get(ctx, inos[1]); err != nil || n.Flags&localdb.FlagContent != 0 || len(n.Chunks) == 0 {
		t.Fatalf("f1 after Record: flags %d, %d chunk bytes, %v", n.Flags, len(n.Chunks), err)
	}
}
