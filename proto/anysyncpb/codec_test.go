package anysyncpb

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/encoding"
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
		data := randomData(rng, n)
		in := &DownloadRangeResponse{Data: data}
		_, wire, _ := marshalLikeProto(t, in)
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
	gets int
	puts [][]byte
}

func (c *countingPool) Get(n int) *[]byte {
	c.gets++
	return c.BufferPool.Get(n)
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

func uploadData(b []byte) *UploadPackRequest {
	return &UploadPackRequest{Part: &UploadPackRequest_Data{Data: b}}
}

func TestCodecUploadMatchesProto(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 100, 16<<10 - 3, 16 << 10, 1 << 20, MaxUploadChunk + 7} {
		data := randomData(rng, n)
		in := uploadData(data)
		out, _, want := marshalLikeProto(t, in)
		// The sent message is a copy: the caller may reuse its data.
		clear(data)
		if !bytes.Equal(out.Materialize(), want) {
			t.Fatalf("%d bytes: the marshalled message aliases the caller's data", n)
		}
		out.Free()
		src := frames(want)
		var got UploadPackRequest
		if err := (Codec{}).Unmarshal(src, &got); err != nil {
			t.Fatal(err)
		}
		var ref UploadPackRequest
		if err := proto.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, &ref) {
			t.Fatalf("%d bytes: decoded differently from proto.Unmarshal", n)
		}
		// The data does not alias gRPC's buffers, which are reused.
		for _, b := range src {
			clear(b.ReadOnlyData())
		}
		if !proto.Equal(&got, &ref) {
			t.Fatalf("%d bytes: data aliases gRPC's buffers", n)
		}
	}
}

func TestCodecUploadWireCases(t *testing.T) {
	field := func(num protowire.Number, v []byte) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	header, err := proto.Marshal(&UploadPackRequest{Part: &UploadPackRequest_Header{Header: &UploadPackHeader{Name: "ab", Size: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 7, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 300)
	// A length written with more bytes than it needs.
	longLen := append(protowire.AppendTag(nil, 2, protowire.BytesType), 0x83, 0x80, 0x00)
	longLen = append(longLen, "abc"...)
	cases := map[string][]byte{
		"empty message":       nil,
		"header":              header,
		"empty data":          field(2, nil),
		"header then data":    append(append([]byte(nil), header...), field(2, []byte("abc"))...),
		"data then header":    append(field(2, []byte("abc")), header...),
		"last data wins":      append(field(2, []byte("first")), field(2, []byte("second"))...),
		"unknown field after": append(field(2, []byte("abc")), unknown...),
		"unknown field first": append(append([]byte(nil), unknown...), field(2, []byte("abc"))...),
		"non-minimal length":  longLen,
		"truncated data":      field(2, []byte("abcdef"))[:5],
		"truncated tag":       {0x80},
		"data too long":       append(field(2, []byte("abc")), 'x'),
		"data of a varint":    protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 5),
	}
	for name, wire := range cases {
		var want UploadPackRequest
		werr := proto.Unmarshal(wire, &want)
		got := uploadData([]byte("stale"))
		gerr := (Codec{}).Unmarshal(frames(wire), got)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: error %v, proto says %v", name, gerr, werr)
			continue
		}
		if werr == nil && !proto.Equal(got, &want) {
			t.Errorf("%s: got %v, proto says %v", name, got, &want)
		}
	}
}

// A data message split anywhere between gRPC's frame buffers decodes the
// same, including a length split across two buffers.
func TestCodecUploadSplitFrames(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20)
	wire, err := proto.Marshal(uploadData(data))
	if err != nil {
		t.Fatal(err)
	}
	for cut := range len(wire) + 1 {
		for _, cut2 := range []int{cut, min(cut+1, len(wire)), len(wire)} {
			src := mem.BufferSlice{mem.SliceBuffer(bytes.Clone(wire[:cut])), mem.SliceBuffer(bytes.Clone(wire[cut:cut2])), mem.SliceBuffer(bytes.Clone(wire[cut2:]))}
			var got UploadPackRequest
			if err := (Codec{}).Unmarshal(src, &got); err != nil {
				t.Fatalf("cut %d/%d: %v", cut, cut2, err)
			}
			if !bytes.Equal(got.GetData(), data) {
				t.Fatalf("cut %d/%d: data differs", cut, cut2)
			}
		}
	}
}

// The sender's copy goes back to the pool once gRPC has written it, and the
// receiver's data comes from the pool.
func TestCodecRecyclesUploadBuffers(t *testing.T) {
	pool := &countingPool{BufferPool: uploadBufs}
	uploadBufs = pool
	t.Cleanup(func() { uploadBufs = pool.BufferPool })
	data := bytes.Repeat([]byte{7}, 64<<10)
	out, err := Codec{}.Marshal(uploadData(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(pool.puts) != 0 {
		t.Fatal("buffer recycled before it was sent")
	}
	out.Free()
	if len(pool.puts) != 1 || len(pool.puts[0]) != len(data) {
		t.Fatalf("%d buffers recycled, want the message's", len(pool.puts))
	}
	wire, _ := proto.Marshal(uploadData(data))
	var got UploadPackRequest
	if err := (Codec{}).Unmarshal(frames(wire), &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.GetData(), data) {
		t.Fatal("data differs")
	}
	if pool.gets != 2 {
		t.Fatalf("%d buffers taken from the pool, want one per message", pool.gets)
	}
	ReleaseUploadBuffer(got.GetData())
	if len(pool.puts) != 2 || &pool.puts[1][0] != &got.GetData()[0] {
		t.Fatal("received data not released to the upload pool")
	}
}

// FuzzCodecUnmarshal checks that the fast paths decode arbitrary bytes
// from the network exactly as the proto codec does: the same messages, the
// same refusals, whatever the frame boundaries. The first byte picks the
// message, the second where gRPC's buffers are cut. Seeds:
// testdata/fuzz/FuzzCodecUnmarshal.
func FuzzCodecUnmarshal(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		wire, step := data[2:], int(data[1])+1
		var src mem.BufferSlice
		for b := wire; len(b) > 0; {
			n := min(step, len(b))
			src = append(src, mem.SliceBuffer(bytes.Clone(b[:n])))
			b = b[n:]
		}
		var got, want proto.Message
		if data[0]%2 == 0 {
			got, want = &UploadPackRequest{}, &UploadPackRequest{}
		} else {
			got, want = &DownloadRangeResponse{}, &DownloadRangeResponse{}
		}
		gerr := Codec{}.Unmarshal(src, got)
		werr := proto.Unmarshal(wire, want)
		if _, ok := want.(*DownloadRangeResponse); ok {
			// The range decoder skips unknown fields; nothing reads them.
			want.ProtoReflect().SetUnknown(nil)
		}
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("codec error %v, proto error %v", gerr, werr)
		}
		if gerr == nil && !proto.Equal(got, want) {
			t.Fatalf("codec decoded %v, proto %v", got, want)
		}
	})
}

// BenchmarkCodecUpload compares the receiving end of a 1 MiB upload
// message (as gRPC hands it over, in 16 KiB frames) through the proto
// codec and through Codec, and the sending end likewise.
func BenchmarkCodecUpload(b *testing.B) {
	data := make([]byte, MaxUploadChunk)
	wire, _ := proto.Marshal(uploadData(data))
	src := frames(wire)
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"proto", protoCodec}, {"pb", Codec{}}} {
		b.Run("Unmarshal/"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				var m UploadPackRequest
				if err := c.codec.Unmarshal(src, &m); err != nil {
					b.Fatal(err)
				}
				ReleaseUploadBuffer(m.GetData()) // what the server does once it stored the data
			}
		})
		b.Run("Marshal/"+c.name, func(b *testing.B) {
			m := uploadData(data)
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				out, err := c.codec.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				out.Free() // what gRPC does once the message is written
			}
		})
	}
}

func randomData(rng *rand.Rand, n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	return data
}

// marshalLikeProto marshals in with Codec and checks that the wire bytes
// are proto.Marshal's.
func marshalLikeProto(t *testing.T, in proto.Message) (out mem.BufferSlice, wire, want []byte) {
	t.Helper()
	out, err := Codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	wire = out.Materialize()
	if want, err = proto.Marshal(in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wire, want) {
		t.Fatalf("%d bytes: marshalled differently from proto.Marshal", len(want))
	}
	return out, wire, want
}

// UploadData marshals exactly as an UploadPackRequest whose data is its
// pieces joined, and as a copy: the pieces may be reused once it returns.
func TestCodecUploadDataPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sizes := range [][]int{{1}, {100, 3, 7000}, {16 << 10, 1, 16<<10 - 1}, {MaxUploadChunk}} {
		var pieces [][]byte
		var joined []byte
		for _, n := range sizes {
			p := randomData(rng, n)
			pieces = append(pieces, p)
			joined = append(joined, p...)
		}
		want, err := proto.Marshal(uploadData(joined))
		if err != nil {
			t.Fatal(err)
		}
		out, err := (Codec{}).Marshal(&UploadData{Pieces: pieces})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pieces {
			clear(p)
		}
		if !bytes.Equal(out.Materialize(), want) {
			t.Fatalf("pieces %v: not the wire of the joined data message", sizes)
		}
		out.Free()
	}
	if _, err := (Codec{}).Marshal(&UploadData{}); err == nil {
		t.Error("an UploadData without data marshalled")
	}
}
