package anysyncpb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Codec is gRPC's proto codec with fast paths for the two messages that
// carry pack data: DownloadRangeResponse (nearly every byte a drive reads)
// and the data messages of UploadPackRequest (every byte it writes). The
// wire format is the same; only copies and allocations are saved.
//
// DownloadRangeResponse:
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
// UploadPackRequest with data:
//
//   - Marshal sends the field header and a copy of the data in a recycled
//     buffer, which goes back to the pool once written. The proto codec
//     would copy too, into a freshly allocated and zeroed slice (a data
//     message is larger than gRPC's largest pooled size). The copy is kept
//     because the caller owns the data: on a failed upload gRPC may still
//     be reading a message after Send and the call have returned, while
//     the caller already lays its next pack out in the same memory.
//   - Unmarshal copies the data out of gRPC's frame buffers once, into a
//     recycled buffer (UploadBuffer) that the receiver gives back with
//     ReleaseUploadBuffer once it has stored it, where the proto codec
//     copies it twice and allocates (and zeroes) a slice per message.
//     Headers and anything unusual go to the proto codec.
//   - UploadData is the data message given as pieces (a pack's blobs,
//     where they lie in the pack writer's buffer): Marshal copies the
//     pieces into one recycled buffer, and the wire is that of an
//     UploadPackRequest whose Data is the pieces joined. Sent with the
//     stream's SendMsg, it spares the pack writer joining them first.
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
	switch m := v.(type) {
	case *DownloadRangeResponse:
		if len(m.Data) > 0 {
			data := m.Data
			return mem.BufferSlice{bytesFieldHeader(1, len(data)), mem.NewBuffer(&data, rangeBufs)}, nil
		}
	case *UploadPackRequest:
		if d, ok := m.GetPart().(*UploadPackRequest_Data); ok && len(d.Data) > 0 {
			buf := uploadBufs.Get(len(d.Data))
			copy(*buf, d.Data)
			return mem.BufferSlice{bytesFieldHeader(2, len(d.Data)), mem.NewBuffer(buf, uploadBufs)}, nil
		}
	case *UploadData:
		n := 0
		for _, p := range m.Pieces {
			n += len(p)
		}
		if n == 0 {
			return nil, errors.New("marshal UploadData: no data")
		}
		buf := uploadBufs.Get(n)
		off := 0
		for _, p := range m.Pieces {
			off += copy((*buf)[off:], p)
		}
		return mem.BufferSlice{bytesFieldHeader(2, n), mem.NewBuffer(buf, uploadBufs)}, nil
	}
	return protoCodec.Marshal(v)
}

// UploadData is an UploadPackRequest data message whose data is the
// pieces joined (see Codec). Only Codec can marshal it.
type UploadData struct {
	Pieces [][]byte
}

// bytesFieldHeader is the tag and length of a bytes field of n bytes.
func bytesFieldHeader(num protowire.Number, n int) mem.SliceBuffer {
	hdr := protowire.AppendTag(make([]byte, 0, 1+protowire.SizeVarint(uint64(n))), num, protowire.BytesType)
	return protowire.AppendVarint(hdr, uint64(n))
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *DownloadRangeResponse:
		return unmarshalRange(data.Materialize(), m)
	case *UploadPackRequest:
		if unmarshalUploadData(data, m) {
			return nil
		}
	}
	return protoCodec.Unmarshal(data, v)
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
		if num > protowire.MaxValidNumber { // ConsumeTag checks only the lower bound
			return fmt.Errorf("%w: field number %d", errWire, num)
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

// unmarshalUploadData decodes data into m if it is the usual data message,
// exactly one non-empty field 2, with m's data in an UploadBuffer; it
// reports false, leaving m alone, for anything else (headers, empty or
// repeated fields, unknown fields, malformed input), which the proto codec
// then decodes or refuses as it always did.
func unmarshalUploadData(data mem.BufferSlice, m *UploadPackRequest) bool {
	// The tag and the length, which may straddle frame buffers.
	var head [2 * binary.MaxVarintLen64]byte
	n := 0
	for _, b := range data {
		n += copy(head[n:], b.ReadOnlyData())
		if n == len(head) {
			break
		}
	}
	num, typ, tn := protowire.ConsumeTag(head[:n])
	if tn < 0 || num != 2 || typ != protowire.BytesType {
		return false
	}
	size, ln := protowire.ConsumeVarint(head[tn:n])
	skip := tn + ln
	if ln < 0 || size == 0 || size != uint64(data.Len()-skip) {
		return false
	}
	buf := *uploadBufs.Get(int(size))
	off := 0
	for _, b := range data {
		src := b.ReadOnlyData()
		if skip >= len(src) {
			skip -= len(src)
			continue
		}
		off += copy(buf[off:], src[skip:])
		skip = 0
	}
	m.Reset()
	m.Part = &UploadPackRequest_Data{Data: buf}
	return true
}

// UploadBuffer returns a buffer of n bytes, recycled from earlier upload
// messages; its content is arbitrary.
func UploadBuffer(n int) []byte { return (*uploadBufs.Get(n))[:n] }

// ReleaseUploadBuffer recycles the data of a received UploadPackRequest
// (or any UploadBuffer) once nothing refers to it any more. Releasing is
// optional; a buffer not released is garbage collected.
func ReleaseUploadBuffer(b []byte) { uploadBufs.Put(&b) }

// uploadBufs is where upload data buffers come from (a test counts them).
var uploadBufs mem.BufferPool = bufPool

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
