package anysyncpb

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Codec is gRPC's proto codec with a fast path for DownloadRangeResponse,
// which carries nearly every byte a drive reads. The wire format is the
// same; only copies are saved:
//
//   - Marshal sends the field header and Data as two buffers instead of
//     copying Data into a marshalled message, and takes Data over: once
//     the message is sent, Data is recycled for a later RangeBuffer. A
//     handler returning the message must not touch Data again (it never
//     does).
//   - Unmarshal copies the message out of gRPC's frame buffers once, into
//     a slice of its own that Data then aliases, where the proto codec
//     copies it into a pooled buffer and then Data out of that. Data
//     belongs to the caller, who may keep or modify it.
//
// Every other message goes to the proto codec. The name is "proto", so the
// content subtype on the wire does not change.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// protoCodec is the codec Codec hands other messages to.
var protoCodec = encoding.GetCodecV2(grpcproto.Name)

// Name implements encoding.CodecV2.
func (Codec) Name() string { return grpcproto.Name }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*DownloadRangeResponse)
	if !ok || len(m.Data) == 0 {
		return protoCodec.Marshal(v)
	}
	hdr := protowire.AppendTag(make([]byte, 0, 1+protowire.SizeVarint(uint64(len(m.Data)))), 1, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(len(m.Data)))
	data := m.Data
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.NewBuffer(&data, rangeBufs)}, nil
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*DownloadRangeResponse)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	return unmarshalRange(data.Materialize(), m)
}

// errWire is a malformed DownloadRangeResponse.
var errWire = errors.New("malformed DownloadRangeResponse")

// unmarshalRange decodes b into m as proto.Unmarshal would (the last data
// field wins; unknown fields, and a field 1 of another wire type, are
// skipped), with m.Data aliasing b.
func unmarshalRange(b []byte, m *DownloadRangeResponse) error {
	m.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
			}
			m.Data = v[:len(v):len(v)]
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// RangeBuffer returns a buffer of n bytes for a DownloadRangeResponse's
// Data, recycled from earlier responses, so a server sending a gigabyte
// does not allocate (and the runtime zero) a gigabyte. Its content is
// arbitrary: the caller must fill all of it, and give a buffer it does
// not send back with ReleaseRangeBuffer.
func RangeBuffer(n int) []byte { return (*rangeBufs.Get(n))[:n] }

// ReleaseRangeBuffer recycles a RangeBuffer that was not sent.
func ReleaseRangeBuffer(b []byte) { rangeBufs.Put(&b) }

// rangeBufs is where RangeBuffer takes buffers from (a test counts them).
var rangeBufs mem.BufferPool = bufPool

// BufferPool returns gRPC's buffer pool without the clearing: gRPC's
// default pool zeroes every buffer it hands out (a tenth of a cold read's
// client CPU went to clearing 16 KiB frame buffers that are then
// overwritten whole; gRPC's transport keeps its own I/O buffers uncleared
// too). Buffers are kept by power-of-two capacity, 256 bytes to 32 MiB
// (ranges are at most MaxRange). Both ends pass it to gRPC
// (experimental.WithBufferPool, experimental.BufferPool).
func BufferPool() mem.BufferPool { return bufPool }

var bufPool = &sizePool{}

const (
	minPoolShift = 8
	maxPoolShift = 25
)

type sizePool struct {
	pools [maxPoolShift + 1]sync.Pool
}

func (p *sizePool) Get(n int) *[]byte {
	shift := max(bits.Len(uint(n-1)), minPoolShift)
	if n <= 0 || shift > maxPoolShift {
		b := make([]byte, max(n, 0))
		return &b
	}
	if b, ok := p.pools[shift].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<shift)
	return &b
}

func (p *sizePool) Put(b *[]byte) {
	// By the largest class the capacity covers: a foreign buffer is fine.
	shift := bits.Len(uint(cap(*b))) - 1
	if shift < minPoolShift || shift > maxPoolShift {
		return
	}
	p.pools[shift].Put(b)
}
