package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/objstore/rclonestore"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// framedUpload is an upload stream as gRPC delivers it to the handler:
// each Recv decodes a message that arrived in 16 KiB frame buffers, with
// the server's codec.
type framedUpload struct {
	codec  encoding.CodecV2
	frames mem.BufferSlice // one 1 MiB data message
	left   int             // messages still to come
}

func (f *framedUpload) Recv() (*pb.UploadPackRequest, error) {
	if f.left == 0 {
		return nil, io.EOF
	}
	f.left--
	m := new(pb.UploadPackRequest)
	if err := f.codec.Unmarshal(f.frames, m); err != nil {
		return nil, err
	}
	return m, nil
}

// BenchmarkUploadReceive measures the server's receive path for a 16 MiB
// pack below the transport: decoding the data messages, the upload reader,
// and the object store's Put, into a store that drops the data ("discard",
// consumed as rclone's local backend consumes it) and into rclone's local
// backend ("local": page cache and fsync). "proto" decodes with gRPC's
// proto codec instead of pb.Codec.
func BenchmarkUploadReceive(b *testing.B) {
	wire, err := proto.Marshal(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Data{Data: make([]byte, pb.MaxUploadChunk)}})
	if err != nil {
		b.Fatal(err)
	}
	var frames mem.BufferSlice
	for rest := wire; len(rest) > 0; {
		n := min(len(rest), 16<<10)
		frames = append(frames, mem.SliceBuffer(rest[:n]))
		rest = rest[n:]
	}
	const msgs = 16
	const size = msgs * pb.MaxUploadChunk
	local, err := rclonestore.New(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	stores := []struct {
		name string
		put  func(ctx context.Context, key string, r io.Reader) error
	}{
		{"discard", func(ctx context.Context, _ string, r io.Reader) error {
			_, err := io.Copy(io.Discard, objstore.NewExactReader(ctx, r, size))
			return err
		}},
		{"local", func(ctx context.Context, key string, r io.Reader) error {
			if err := local.Put(ctx, key, r, size); err != nil {
				return err
			}
			return local.Delete(ctx, key) // keeps the disk footprint small
		}},
	}
	codecs := []struct {
		name  string
		codec encoding.CodecV2
	}{{"pb", pb.Codec{}}, {"proto", encoding.GetCodecV2(grpcproto.Name)}}
	for _, st := range stores {
		for _, c := range codecs {
			b.Run(st.name+"/"+c.name, func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					r := &uploadReader{stream: &framedUpload{codec: c.codec, frames: frames, left: msgs}, remaining: size}
					err := st.put(context.Background(), fmt.Sprintf("pack%d", i), r)
					if err == nil {
						err = r.finish()
					}
					r.release()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkAuthenticate measures the token check every authenticated call
// makes (the device and account lookups).
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	m, err := meta.OpenSQLite(ctx, filepath.Join(b.TempDir(), "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	svc, err := New(m, objstore.NewMem(), Options{Secret: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	tok := make([]byte, pb.TokenSize)
	tok[0] = 1
	now := time.Now()
	u := meta.User{ID: fmt.Sprintf("%032x", 1), Email: "a@b.c", BoxPublicKey: make([]byte, 32), Created: now,
		Credentials: meta.Credentials{Params: meta.Params{N: 1 << 14, R: 8, P: 1, Salt: make([]byte, 16)}, MasterKeys: []byte{1}}}
	d := meta.Device{ID: fmt.Sprintf("%032x", 2), UserID: u.ID, TokenHash: crypto.TokenHash(tok), Created: now, LastSeen: now}
	if err := m.CreateUser(ctx, u, d); err != nil {
		b.Fatal(err)
	}
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(pb.AuthHeader, "Bearer "+base64.StdEncoding.EncodeToString(tok)))
	b.ReportAllocs()
	for b.Loop() {
		id, err := svc.authenticate(ctx)
		if err != nil || id.userID != u.ID {
			b.Fatal(id, err)
		}
	}
}
