package anysyncpb

import (
	"errors"
	"fmt"

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
//     copying Data into a marshalled message. The caller must not modify
//     Data until the message is sent (a handler returning it never does).
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
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.SliceBuffer(m.Data)}, nil
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
