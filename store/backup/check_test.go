//go:build unix

package backup

import (
	"context"
	"errors"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/pack"
)

// dataPacks returns the packs holding file chunks, and their headers.
func dataPacks(t *testing.T, w *world) map[string][]pack.Entry {
	t.Helper()
	codec, err := pack.NewCodec(crypto.NewBlobCipher(testKeys().FileKey))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]pack.Entry{}
	err = w.objs.List(context.Background(), func(info objstore.ObjectInfo) error {
		entries, err := pack.ReadHeader(context.Background(), w.objs, codec, info.Name)
		if err != nil {
			return err
		}
		if entries[0].Type == crypto.BlobData {
			out[info.Name] = entries
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readObject(t *testing.T, s objstore.ObjectStore, name string) []byte {
	t.Helper()
	rc, err := s.GetRange(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t *testing.T, s objstore.ObjectStore, name string, b []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, strings.NewReader(string(b)), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsCorruptPack(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	for i := range 6 {
		writeFile(t, filepath.Join(src, "d", string(rune('a'+i))), randomBytes(200<<10, uint64(i)), 0o644)
	}
	s := w.mustBackup(t, w.account(), src, nil)

	rep, err := Check(context.Background(), CheckOptions{Account: w.account(), ReadData: true})
	if err != nil {
		t.Fatalf("check of a healthy repository: %v %v", err, rep.Problems)
	}
	packs := dataPacks(t, w)
	if rep.Versions != 1 || rep.Trees != 5 || rep.DataBlobs == 0 || rep.PacksRead < int64(len(packs)) || rep.BlobsRead < rep.DataBlobs {
		t.Fatalf("report %+v: want 1 version, 5 trees (/, Backups, test, data, d), every pack read", rep)
	}

	// Flip one byte inside the first blob of a data pack.
	var victim string
	for name := range packs {
		victim = name
		break
	}
	b := readObject(t, w.objs, victim)
	e := packs[victim][0]
	b[e.Offset+e.Length/2] ^= 0x40
	putObject(t, w.objs, victim, b)

	// Headers still match the index: only reading the data finds it.
	if rep, err := Check(context.Background(), CheckOptions{Account: w.account()}); err != nil {
		t.Fatalf("header-only check: %v %v", err, rep.Problems)
	}
	rep, err = Check(context.Background(), CheckOptions{Account: w.account(), ReadData: true})
	if !errors.Is(err, ErrCheckFailed) {
		t.Fatalf("check --read-data: %v, want ErrCheckFailed", err)
	}
	if len(rep.Problems) != 1 {
		t.Fatalf("problems %v, want exactly the corrupt blob", rep.Problems)
	}
	p := rep.Problems[0]
	if p.Pack != victim || p.Blob != e.ID || !errors.Is(&p, crypto.ErrAuth) || !strings.Contains(p.Error(), victim) {
		t.Fatalf("problem %v: want pack %s, blob %s, an authentication failure", &p, victim, e.ID.Short())
	}

	// A restore of the damaged file fails on it rather than writing wrong bytes.
	_, err = Restore(context.Background(), RestoreOptions{Account: w.account(), CloudPath: "/Backups/test/data", Version: s.Seq, Target: t.TempDir()})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore over a corrupt chunk: %v, want ErrIncomplete", err)
	}

	// A missing pack is found without reading data.
	if err := w.objs.Delete(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(context.Background(), CheckOptions{Account: w.account()})
	if !errors.Is(err, ErrCheckFailed) || len(rep.Problems) != 1 || !errors.Is(&rep.Problems[0], objstore.ErrNotFound) {
		t.Fatalf("check with a deleted pack: %v %v", err, rep.Problems)
	}
}

func TestCheckSubsetAndAllVersions(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	acct := w.account()
	for i := range 4 {
		writeFile(t, filepath.Join(src, "f"), randomBytes(300<<10, uint64(10+i)), 0o644)
		settle()
		w.mustBackup(t, acct, src, nil)
	}
	head, err := Check(context.Background(), CheckOptions{Account: w.account()})
	if err != nil {
		t.Fatal(err)
	}
	all, err := Check(context.Background(), CheckOptions{Account: w.account(), All: true})
	if err != nil {
		t.Fatal(err)
	}
	if head.Versions != 1 || all.Versions != 4 || all.DataBlobs <= head.DataBlobs {
		t.Fatalf("head %+v, all %+v", head, all)
	}
	sub, err := Check(context.Background(), CheckOptions{Account: w.account(), All: true, ReadData: true, Subset: 25})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(math.Ceil(float64(all.Packs) / 4)); sub.PacksRead != want {
		t.Fatalf("subset read %d of %d packs, want %d", sub.PacksRead, all.Packs, want)
	}
	if _, err := Check(context.Background(), CheckOptions{Account: w.account(), Subset: 101}); err == nil {
		t.Fatal("subset of 101% accepted")
	}
}

func TestCheckMissingIndexEntry(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("content"), 0o644)
	w.mustBackup(t, w.account(), src, nil)
	// Forget one data blob on the server, as a lost commit would.
	w.remote.mu.Lock()
	for id := range w.remote.index {
		rp, _ := w.account().openRepo()
		if rp.ID([]byte("content")) == id {
			delete(w.remote.index, id)
		}
	}
	w.remote.mu.Unlock()
	rep, err := Check(context.Background(), CheckOptions{Account: w.account()})
	if !errors.Is(err, ErrCheckFailed) || len(rep.Problems) != 1 || !errors.Is(&rep.Problems[0], ErrMissingBlob) {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
}
