package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/objstore/objstoretest"
)

// writes records every Write (copied, since the chunks are reused).
type writes struct{ got [][]byte }

func (w *writes) Write(p []byte) (int, error) {
	w.got = append(w.got, bytes.Clone(p))
	return len(p), nil
}

func (w *writes) all() []byte { return bytes.Join(w.got, nil) }

func TestExactReaderWriteToChunks(t *testing.T) {
	data := objstoretest.Data(1, 3<<20+5)
	var w writes
	er := objstore.NewExactReader(context.Background(), objstoretest.NewChunkReader(data, []int{1 << 20}, nil), int64(len(data)))
	n, err := io.Copy(&w, er)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("copied %d, %v", n, err)
	}
	if !bytes.Equal(w.all(), data) {
		t.Fatal("wrote other bytes")
	}
	// One write per chunk: the chunks went through whole.
	if len(w.got) != 4 || len(w.got[0]) != 1<<20 {
		t.Fatalf("%d writes, the first of %d bytes; want 4, of the chunks", len(w.got), len(w.got[0]))
	}
}

// A source that fails, or holds more, after all the declared bytes must
// not get all of them written: a consumer that stops at the size (an HTTP
// body of known length) would have sent a complete object.
func TestExactReaderWriteToWithholdsLastChunk(t *testing.T) {
	data := objstoretest.Data(2, 3<<20)
	boom := errors.New("boom")
	for name, src := range map[string]io.Reader{
		"fails after the data": objstoretest.NewChunkReader(data, []int{1 << 20}, boom),
		"one byte too many":    objstoretest.NewChunkReader(append(bytes.Clone(data), 'x'), []int{1 << 20}, nil),
	} {
		var w writes
		er := objstore.NewExactReader(context.Background(), src, int64(len(data)))
		_, err := er.WriteTo(&w)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if er.Err() == nil || er.Err() != err {
			t.Errorf("%s: Err() = %v, WriteTo = %v", name, er.Err(), err)
		}
		if len(w.all()) >= len(data) {
			t.Errorf("%s: all %d bytes written before the failure", name, len(data))
		}
	}
}

func TestExactReaderWriteToErrors(t *testing.T) {
	data := objstoretest.Data(3, 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		src  io.Reader
		size int64
		want error
	}{
		{"short", context.Background(), objstoretest.NewChunkReader(data, []int{30}, nil), 101, objstore.ErrSizeMismatch},
		{"long chunk", context.Background(), objstoretest.NewChunkReader(data, []int{100}, nil), 99, objstore.ErrSizeMismatch},
		{"empty but holds data", context.Background(), objstoretest.NewChunkReader(data, []int{30}, nil), 0, objstore.ErrSizeMismatch},
		{"cancelled", ctx, objstoretest.NewChunkReader(data, []int{30}, nil), 100, context.Canceled},
		{"short, not chunked", context.Background(), strings.NewReader("abc"), 4, objstore.ErrSizeMismatch},
	}
	for _, tc := range cases {
		var w writes
		er := objstore.NewExactReader(tc.ctx, tc.src, tc.size)
		if _, err := er.WriteTo(&w); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if !errors.Is(er.Err(), tc.want) {
			t.Errorf("%s: Err() = %v, want %v", tc.name, er.Err(), tc.want)
		}
	}
	// An empty source of size 0 is fine.
	er := objstore.NewExactReader(context.Background(), objstoretest.NewChunkReader(nil, []int{1}, nil), 0)
	if n, err := er.WriteTo(&writes{}); n != 0 || err != nil {
		t.Errorf("empty: %d, %v", n, err)
	}
}

type failingWriter struct{}

var errDiskFull = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// A failing writer is the writer's failure, not a verdict on the stream.
func TestExactReaderWriteToWriterFails(t *testing.T) {
	er := objstore.NewExactReader(context.Background(), objstoretest.NewChunkReader(make([]byte, 10), []int{4}, nil), 10)
	if _, err := er.WriteTo(failingWriter{}); !errors.Is(err, errDiskFull) {
		t.Fatalf("WriteTo = %v, want the writer's error", err)
	}
	if er.Err() != nil {
		t.Fatalf("Err() = %v, want nil", er.Err())
	}
}

func TestPiecesReader(t *testing.T) {
	pieces := [][]byte{[]byte("ab"), nil, []byte("cde"), []byte("f")}
	r := objstore.NewPiecesReader(pieces)
	if got := r.Unread(); len(got) != len(pieces) {
		t.Fatalf("Unread before reading = %q", got)
	}
	// Odd read sizes cross piece boundaries.
	var out []byte
	buf := make([]byte, 2)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(out) != "abcdef" {
		t.Fatalf("read %q, want abcdef", out)
	}
	if r.Unread() != nil {
		t.Error("Unread after reading returned the pieces")
	}
	if n, err := objstore.NewPiecesReader(nil).Read(buf); n != 0 || err != io.EOF {
		t.Errorf("empty reader: %d, %v", n, err)
	}
}
