package anysyncpb

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// frames splits b into gRPC-style buffers of at most 16 KiB, copied.
func frames(b []byte) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		n := min(len(b), 16<<10)
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:n])))
		b = b[n:]
	}
	return s
}

func TestCodecRangeMatchesProto(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 100, 16 << 10, 1<<20 + 7} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		in := &DownloadRangeResponse{Data: data}
		out, err := Codec{}.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		wire := out.Materialize()
		want, err := proto.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wire, want) {
			t.Fatalf("%d bytes: marshalled differently from proto.Marshal", n)
		}
		src := frames(wire)
		var got DownloadRangeResponse
		if err := (Codec{}).Unmarshal(src, &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Data, data) {
			t.Fatalf("%d bytes: data differs after a round trip", n)
		}
		// Data is the caller's: the frame buffers may be reused.
		for _, b := range src {
			clear(b.ReadOnlyData())
		}
		if !bytes.Equal(got.Data, data) {
			t.Fatalf("%d bytes: data aliases gRPC's buffers", n)
		}
		if cap(got.Data) != len(got.Data) {
			t.Fatalf("cap %d for %d bytes: appending would overwrite the caller's memory", cap(got.Data), len(got.Data))
		}
	}
}

func TestCodecRangeWireCases(t *testing.T) {
	field := func(num protowire.Number, v []byte) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 7, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 300)
	cases := map[string][]byte{
		"empty message":        nil,
		"unknown fields":       append(append([]byte(nil), unknown...), field(1, []byte("abc"))...),
		"last data field wins": append(field(1, []byte("first")), field(1, []byte("second"))...),
		"unknown bytes field":  append(field(1, []byte("abc")), field(9, []byte("zzz"))...),
		"data of another type": append(field(1, []byte("abc")), protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5)...),
	}
	for name, wire := range cases {
		var want DownloadRangeResponse
		if err := proto.Unmarshal(wire, &want); err != nil {
			t.Fatalf("%s: proto: %v", name, err)
		}
		got := DownloadRangeResponse{Data: []byte("stale")}
		if err := (Codec{}).Unmarshal(frames(wire), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%s: data %q, proto says %q", name, got.Data, want.Data)
		}
	}
	bad := map[string][]byte{
		"truncated data": field(1, []byte("abcdef"))[:5],
		"truncated tag":  {0x80},
	}
	for name, wire := range bad {
		var got DownloadRangeResponse
		err := (Codec{}).Unmarshal(frames(wire), &got)
		if !errors.Is(err, errWire) {
			t.Errorf("%s: got %v, want a wire error", name, err)
		}
		if proto.Unmarshal(wire, &DownloadRangeResponse{}) == nil {
			t.Errorf("%s: proto accepts it", name)
		}
	}
}

// Other messages go through the proto codec unchanged.
func TestCodecOtherMessages(t *testing.T) {
	in := &DownloadRangeRequest{Pack: "ab", Offset: 7, Length: 9}
	out, err := Codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var got DownloadRangeRequest
	if err := (Codec{}).Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &got) {
		t.Fatalf("got %v, want %v", &got, in)
	}
	if (Codec{}).Name() != "proto" {
		t.Fatalf("name %q changes the content subtype", Codec{}.Name())
	}
}

func BenchmarkCodecRangeUnmarshal(b *testing.B) {
	wire, _ := proto.Marshal(&DownloadRangeResponse{Data: make([]byte, 1<<20)})
	src := frames(wire)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		var m DownloadRangeResponse
		if err := (Codec{}).Unmarshal(src, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRangeBufferSizes(t *testing.T) {
	for _, n := range []int{1, 1000, 64 << 10, 64<<10 + 1, 1 << 20, 3<<20 + 5, MaxRange, 40 << 20} {
		b := RangeBuffer(n)
		if len(b) != n {
			t.Fatalf("RangeBuffer(%d) has %d bytes", n, len(b))
		}
		for i := range b {
			b[i] = 1 // the whole length is usable
		}
		ReleaseRangeBuffer(b)
	}
	// A recycled buffer comes back with the length asked for, whatever it
	// had before.
	b := RangeBuffer(3 << 20)
	ReleaseRangeBuffer(b[:10])
	if got := RangeBuffer(2<<20 + 1); len(got) != 2<<20+1 {
		t.Fatalf("recycled buffer has %d bytes", len(got))
	}
	// Buffers of any capacity may be released: too small or too large ones
	// are dropped, others serve requests they are large enough for.
	ReleaseRangeBuffer(make([]byte, 10))
	ReleaseRangeBuffer(make([]byte, 100<<20))
	ReleaseRangeBuffer(make([]byte, 0, 1<<20+5))
	if got := RangeBuffer(1 << 20); len(got) != 1<<20 || cap(got) < 1<<20 {
		t.Fatalf("len %d cap %d", len(got), cap(got))
	}
}

type countingPool struct {
	mem.BufferPool
	puts [][]byte
}

func (c *countingPool) Put(b *[]byte) {
	c.puts = append(c.puts, *b)
	c.BufferPool.Put(b)
}

// The server marshals a RangeBuffer and the message is sent; freeing the
// marshalled buffers (what gRPC does once they are written) recycles it,
// and not before.
func TestCodecRecyclesRangeBuffer(t *testing.T) {
	pool := &countingPool{BufferPool: rangeBufs}
	rangeBufs = pool
	t.Cleanup(func() { rangeBufs = pool.BufferPool })
	data := RangeBuffer(1 << 20)
	for i := range data {
		data[i] = byte(i)
	}
	out, err := Codec{}.Marshal(&DownloadRangeResponse{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	var got DownloadRangeResponse
	if err := (Codec{}).Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(pool.puts) != 0 {
		t.Fatal("data recycled before it was sent")
	}
	out.Free()
	if len(pool.puts) != 1 || &pool.puts[0][:1][0] != &data[0] {
		t.Fatalf("%d buffers recycled, want the data's", len(pool.puts))
	}
	if !bytes.Equal(got.Data[:3], []byte{0, 1, 2}) {
		t.Fatal("round trip changed the data")
	}
}
