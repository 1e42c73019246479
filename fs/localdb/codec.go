package localdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/anysync/anysync/crypto"
)

// ErrCorrupt means an encoded column failed to decode.
var ErrCorrupt = errors.New("corrupt node column")

// Limits of extended attributes, as Linux's XATTR_NAME_MAX / XATTR_SIZE_MAX.
const (
	MaxXattrName  = 255
	MaxXattrValue = 64 << 10
	MaxXattrs     = 1024
)

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// EncodeXattrs encodes attributes sorted by name: uvarint count, then per
// attribute uvarint name length, name, uvarint value length, value. An empty
// list encodes to nil.
func EncodeXattrs(xs []Xattr) []byte {
	if len(xs) == 0 {
		return nil
	}
	sorted := append([]Xattr(nil), xs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	out := binary.AppendUvarint(nil, uint64(len(sorted)))
	for _, x := range sorted {
		out = binary.AppendUvarint(out, uint64(len(x.Name)))
		out = append(out, x.Name...)
		out = binary.AppendUvarint(out, uint64(len(x.Value)))
		out = append(out, x.Value...)
	}
	return out
}

// DecodeXattrs decodes EncodeXattrs output, checking the limits.
func DecodeXattrs(b []byte) ([]Xattr, error) {
	if len(b) == 0 {
		return nil, nil
	}
	count, n := binary.Uvarint(b)
	if n <= 0 || count > MaxXattrs {
		return nil, fmt.Errorf("%w: xattr count", ErrCorrupt)
	}
	b = b[n:]
	field := func(limit uint64) ([]byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > limit || uint64(len(b)-n) < l {
			return nil, fmt.Errorf("%w: xattr field", ErrCorrupt)
		}
		v := b[n : n+int(l)]
		b = b[n+int(l):]
		return v, nil
	}
	out := make([]Xattr, 0, count)
	for range count {
		name, err := field(MaxXattrName)
		if err != nil {
			return nil, err
		}
		value, err := field(MaxXattrValue)
		if err != nil {
			return nil, err
		}
		if len(name) == 0 || (len(out) > 0 && string(name) <= out[len(out)-1].Name) {
			return nil, fmt.Errorf("%w: xattr names not sorted and unique", ErrCorrupt)
		}
		out = append(out, Xattr{Name: string(name), Value: append([]byte(nil), value...)})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing xattr bytes", ErrCorrupt, len(b))
	}
	return out, nil
}

// ChunkRef is one chunk of a file's content.
type ChunkRef struct {
	ID     crypto.ID
	Length uint32
}

// chunkRefSize is the encoded size of a ChunkRef: ID then little-endian length.
const chunkRefSize = crypto.IDSize + 4

// EncodeChunks encodes a chunk list as concatenated 36-byte records.
func EncodeChunks(cs []ChunkRef) []byte {
	if len(cs) == 0 {
		return nil
	}
	out := make([]byte, 0, len(cs)*chunkRefSize)
	for _, c := range cs {
		out = append(out, c.ID[:]...)
		out = binary.LittleEndian.AppendUint32(out, c.Length)
	}
	return out
}

// DecodeChunks decodes EncodeChunks output.
func DecodeChunks(b []byte) ([]ChunkRef, error) {
	if len(b)%chunkRefSize != 0 {
		return nil, fmt.Errorf("%w: chunk list of %d bytes", ErrCorrupt, len(b))
	}
	out := make([]ChunkRef, len(b)/chunkRefSize)
	for i := range out {
		rec := b[i*chunkRefSize:]
		copy(out[i].ID[:], rec[:crypto.IDSize])
		out[i].Length = binary.LittleEndian.Uint32(rec[crypto.IDSize:])
	}
	return out, nil
}
