package pack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/objstore"
)

// ErrEmptyPack means Finish was called on a writer with no blobs.
var ErrEmptyPack = errors.New("pack has no blobs")

// ParseTrailer parses the last TrailerSize bytes of a pack and returns the
// length of the sealed header in front of it.
func ParseTrailer(tail []byte) (headerLen int, err error) {
	if len(tail) != TrailerSize {
		return 0, fmt.Errorf("pack trailer: %d bytes, want %d: %w", len(tail), TrailerSize, ErrCorrupt)
	}
	if [4]byte(tail[4:]) != trailerMagic {
		return 0, fmt.Errorf("pack trailer: bad magic %x: %w", tail[4:], ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(tail)
	if n < headerPad+crypto.Overhead || n > maxHeaderLen {
		return 0, fmt.Errorf("pack trailer: header length %d out of range: %w", n, ErrCorrupt)
	}
	return int(n), nil
}

// DecodeHeader opens the sealed header of pack packName, whose total size is
// packSize, and returns its entries in pack order. It checks that the blobs
// tile the pack exactly up to the header, with sane types, lengths and no
// duplicates, so entries can be trusted for range reads.
func DecodeHeader(codec *Codec, packName string, header []byte, packSize int64) ([]Entry, error) {
	headerID, err := ParseName(packName)
	if err != nil {
		return nil, fmt.Errorf("decode pack header: %w", err)
	}
	if packSize > MaxPackSize || packSize < int64(len(header))+TrailerSize {
		return nil, fmt.Errorf("decode header of pack %s: size %d: %w", packName, packSize, ErrCorrupt)
	}
	if len(header) > maxHeaderLen {
		return nil, fmt.Errorf("decode header of pack %s: %d bytes: %w", packName, len(header), ErrTooLarge)
	}
	plain, err := codec.cipher.Open(nil, header, headerID, crypto.BlobPackHeader)
	if err != nil {
		return nil, fmt.Errorf("decode header of pack %s: %w", packName, err)
	}
	entries, err := parseHeader(plain, packSize-int64(len(header))-TrailerSize)
	if err != nil {
		return nil, fmt.Errorf("decode header of pack %s: %w", packName, err)
	}
	return entries, nil
}

// parseHeader parses header plaintext; blobsLen is the size of the blob area.
func parseHeader(plain []byte, blobsLen int64) ([]Entry, error) {
	if len(plain) == 0 || plain[0] != headerVersion {
		return nil, fmt.Errorf("unknown header version: %w", ErrCorrupt)
	}
	count, k := binary.Uvarint(plain[1:])
	if k <= 0 || k != uvarintLen(count) || count == 0 || count > MaxEntries {
		return nil, fmt.Errorf("bad entry count: %w", ErrCorrupt)
	}
	n := int(count)
	if len(plain) != headerPlainLen(n) {
		return nil, fmt.Errorf("header is %d bytes for %d entries: %w", len(plain), n, ErrCorrupt)
	}
	p := plain[1+k:]
	entries := make([]Entry, n)
	seen := make(map[blobKey]struct{}, n)
	var off int64
	for i := range entries {
		e := &entries[i]
		e.Type = crypto.BlobType(p[0])
		copy(e.ID[:], p[1:1+crypto.IDSize])
		e.Length = binary.LittleEndian.Uint32(p[1+crypto.IDSize:])
		e.RawLength = binary.LittleEndian.Uint32(p[5+crypto.IDSize:])
		p = p[entrySize:]
		if err := checkBlob(e.Type, int(e.Length), int(e.RawLength)); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if _, dup := seen[blobKey{e.Type, e.ID}]; dup {
			return nil, fmt.Errorf("entry %d: duplicate %s blob %s: %w", i, e.Type, e.ID.Short(), ErrCorrupt)
		}
		seen[blobKey{e.Type, e.ID}] = struct{}{}
		e.Offset = uint32(off)
		off += int64(e.Length)
		if off > blobsLen {
			return nil, fmt.Errorf("entry %d ends at %d, past the blobs (%d bytes): %w", i, off, blobsLen, ErrCorrupt)
		}
	}
	if off != blobsLen {
		return nil, fmt.Errorf("entries cover %d of %d blob bytes: %w", off, blobsLen, ErrCorrupt)
	}
	for _, b := range p {
		if b != 0 {
			return nil, fmt.Errorf("nonzero header padding: %w", ErrCorrupt)
		}
	}
	return entries, nil
}

// tailRead is how much of a pack's end ReadHeader fetches first; it holds
// the whole header of a pack of up to ~390 blobs, so one request usually
// suffices.
const tailRead = 4*headerPad + crypto.Overhead + TrailerSize

// ReadHeader fetches and decodes the header of pack name: a stat, one range
// read of the tail, and a second one only for headers larger than tailRead.
func ReadHeader(ctx context.Context, s objstore.ObjectStore, codec *Codec, name string) ([]Entry, error) {
	if _, err := ParseName(name); err != nil {
		return nil, fmt.Errorf("read pack header: %w", err)
	}
	info, err := s.Stat(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read header of pack %s: %w", name, err)
	}
	size := info.Size
	if size < TrailerSize || size > MaxPackSize {
		return nil, fmt.Errorf("read header of pack %s: size %d: %w", name, size, ErrCorrupt)
	}
	tailLen := min(size, tailRead)
	tail, err := readRange(ctx, s, name, size-tailLen, tailLen)
	if err != nil {
		return nil, fmt.Errorf("read header of pack %s: %w", name, err)
	}
	hlen, err := ParseTrailer(tail[len(tail)-TrailerSize:])
	if err != nil {
		return nil, fmt.Errorf("read header of pack %s: %w", name, err)
	}
	if int64(hlen)+TrailerSize > size {
		return nil, fmt.Errorf("read header of pack %s: header of %d bytes in a %d-byte pack: %w", name, hlen, size, ErrCorrupt)
	}
	var header []byte
	if hlen+TrailerSize <= len(tail) {
		header = tail[len(tail)-TrailerSize-hlen : len(tail)-TrailerSize]
	} else {
		header, err = readRange(ctx, s, name, size-TrailerSize-int64(hlen), int64(hlen))
		if err != nil {
			return nil, fmt.Errorf("read header of pack %s: %w", name, err)
		}
	}
	return DecodeHeader(codec, name, header, size)
}

// ReadBlob fetches the sealed bytes of one blob by range. The entry usually
// comes from the server's index, so its length is checked against the
// format limits before anything is allocated.
func ReadBlob(ctx context.Context, s objstore.ObjectStore, pack string, e Entry) ([]byte, error) {
	if _, err := ParseName(pack); err != nil {
		return nil, fmt.Errorf("read blob %s: %w", e.ID.Short(), err)
	}
	if err := checkBlob(e.Type, int(e.Length), int(e.RawLength)); err != nil {
		return nil, fmt.Errorf("read %s blob %s from pack %s: %w", e.Type, e.ID.Short(), pack, err)
	}
	b, err := readRange(ctx, s, pack, int64(e.Offset), int64(e.Length))
	if err != nil {
		return nil, fmt.Errorf("read %s blob %s from pack %s: %w", e.Type, e.ID.Short(), pack, err)
	}
	return b, nil
}

// readRange reads exactly n bytes at off; a short object is ErrCorrupt.
func readRange(ctx context.Context, s objstore.ObjectStore, name string, off, n int64) ([]byte, error) {
	rc, err := s.GetRange(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if br, ok := rc.(*objstore.BytesReader); ok {
		if b := br.Unread(); int64(len(b)) == n {
			return b, nil // handed over by the store: no copy
		}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("range %d+%d: short read: %w", off, n, ErrCorrupt)
		}
		return nil, fmt.Errorf("range %d+%d: %w", off, n, err)
	}
	return buf, nil
}
