package remote_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/remote/remotetest"
	"github.com/anysync/anysync/store/objstore"
)

func benchName(i int) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:], uint64(i)+1)
	return hex.EncodeToString(b[:])
}

// drainStore stores nothing: Put reads and drops the data, so the upload
// benchmark measures TLS, gRPC and the server rather than a test store. It
// consumes the data as rclone's local backend does (io.Copy through an
// ExactReader).
type drainStore struct{ objstore.ObjectStore }

func (drainStore) Put(ctx context.Context, _ string, r io.Reader, size int64) error {
	_, err := io.Copy(io.Discard, objstore.NewExactReader(ctx, r, size))
	return err
}

// reportCPU reports the CPU time per operation of the client and the
// server together (cpu-ms/op).
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if used := cpuTime() - start; used > 0 && b.N > 0 {
			b.ReportMetric(float64(used.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		}
	}
}

// BenchmarkUploadPack measures a 16 MiB pack through TLS, gRPC and the
// server (to a store that drops the data).
func BenchmarkUploadPack(b *testing.B) {
	srv := remotetest.Start(b, func(c *remotetest.Config) { c.Objects = drainStore{objstore.NewMem()} })
	c := srv.SignUp(b, "").Client
	data := make([]byte, 16<<20)
	_, _ = rand.Read(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		if err := c.UploadPack(ctx, benchName(i), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownloadRange measures 1 MiB range reads, the size of an
// average chunk fetch.
func BenchmarkDownloadRange(b *testing.B) {
	srv := remotetest.Start(b)
	c := srv.SignUp(b, "").Client
	data := make([]byte, 16<<20)
	_, _ = rand.Read(data)
	name := benchName(0)
	if err := c.UploadPack(ctx, name, data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	defer reportCPU(b)()
	for i := 0; b.Loop(); i++ {
		if _, err := c.DownloadRange(ctx, name, int64(i%15)<<20, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommit measures a commit of 1000 index entries (a 16 MiB pack
// of small blobs) end to end.
func BenchmarkCommit(b *testing.B) {
	srv := remotetest.Start(b)
	c := srv.SignUp(b, "").Client
	name := benchName(0)
	if err := c.UploadPack(ctx, name, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	head := remote.Head{}
	for i := 0; b.Loop(); i++ {
		es := make([]remote.IndexEntry, 1000)
		for j := range es {
			_, _ = rand.Read(es[j].ID[:])
			es[j].Pack, es[j].Offset, es[j].Length = name, uint32(j), 1
		}
		var err error
		head, err = c.Commit(ctx, remote.CommitRequest{ExpectedSeq: head.Seq, Version: es[0].ID, Parent: head.Version, Entries: es})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHasBlobs measures the dedup query for 1000 IDs.
func BenchmarkHasBlobs(b *testing.B) {
	srv := remotetest.Start(b)
	c := srv.SignUp(b, "").Client
	ids := make([]crypto.ID, 1000)
	for i := range ids {
		_, _ = rand.Read(ids[i][:])
	}
	for b.Loop() {
		if _, err := c.HasBlobs(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
}
