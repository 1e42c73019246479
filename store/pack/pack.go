package pack

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/internal/bigbuf"
)

// Pack layout limits.
const (
	// DefaultTarget is the pack size a Writer aims for.
	DefaultTarget = 16 << 20
	// TrailerSize is the size of the fixed trailer at the end of a pack.
	TrailerSize = 8
	// MaxEntries bounds the blobs in one pack (and so the header size).
	MaxEntries = 1 << 18
	// MaxPackSize bounds a pack; offsets are uint32.
	MaxPackSize = 1 << 31

	headerVersion = 1
	entrySize     = 1 + crypto.IDSize + 4 + 4 // type, id, sealed length, raw length
	headerPad     = 4096                      // header plaintext is padded to a multiple of this
	maxHeaderLen  = 1 + binary.MaxVarintLen64 + MaxEntries*entrySize + headerPad + crypto.Overhead
)

// trailerMagic ends every pack: "ASP" and the pack format version.
var trailerMagic = [4]byte{'A', 'S', 'P', 1}

// Entry locates one blob in a pack.
type Entry struct {
	Type      crypto.BlobType
	ID        crypto.ID
	Offset    uint32 // of the sealed blob from the start of the pack
	Length    uint32 // sealed length in the pack
	RawLength uint32 // plaintext length
}

// NewName returns a fresh random pack name: 32 random bytes in lowercase hex.
func NewName() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new pack name: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ParseName checks a pack name (64 lowercase hex digits) and returns the ID
// its header is sealed under, which ties a header to its pack.
func ParseName(name string) (crypto.ID, error) {
	var id crypto.ID
	if len(name) != 2*crypto.IDSize {
		return id, fmt.Errorf("pack name %q: want %d hex digits: %w", name, 2*crypto.IDSize, ErrCorrupt)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return id, fmt.Errorf("pack name %q: not lowercase hex: %w", name, ErrCorrupt)
		}
	}
	if _, err := hex.Decode(id[:], []byte(name)); err != nil {
		return id, fmt.Errorf("pack name %q: %v: %w", name, err, ErrCorrupt)
	}
	return id, nil
}

// Writer collects sealed blobs into one pack. It is not safe for concurrent
// use: encode on many goroutines with Codec.Encode, then AddSealed here.
type Writer struct {
	codec   *Codec
	target  int
	small   bool     // grow the buffer by doubling from 1 MiB (NewSmallWriter)
	spares  [][]byte // finished packs' bytes, handed back for the next ones
	buf     []byte   // sealed blobs in arrival order
	entries []Entry  // Offset is into buf until Finish
	seen    map[blobKey]struct{}
}

type blobKey struct {
	t  crypto.BlobType
	id crypto.ID
}

// NewWriter returns a pack writer aiming for packs of target bytes
// (DefaultTarget if target <= 0).
func NewWriter(codec *Codec, target int) *Writer {
	if target <= 0 {
		target = DefaultTarget
	}
	target = min(target, MaxPackSize/2)
	return &Writer{codec: codec, target: target, seen: make(map[blobKey]struct{})}
}

// NewSmallWriter returns a writer for packs that mostly stay far below the
// target (metadata: trees and versions): its buffer starts at 1 MiB and
// doubles, instead of being allocated at the full pack size at once.
func NewSmallWriter(codec *Codec, target int) *Writer {
	w := NewWriter(codec, target)
	w.small = true
	return w
}

// Add encodes plain (compress and seal) and adds it to the pack. Adding a
// blob already in this pack is a no-op: blobs are content-addressed.
func (w *Writer) Add(t crypto.BlobType, id crypto.ID, plain []byte) error {
	if _, ok := w.seen[blobKey{t, id}]; ok {
		return nil
	}
	w.reserve(len(plain) + minSealedLen)
	n := len(w.buf)
	sealed, err := w.codec.Encode(w.buf, plain, id, t)
	if err != nil {
		return fmt.Errorf("pack add: %w", err)
	}
	w.buf = sealed
	return w.record(t, id, n, len(plain))
}

// AddSealed adds a blob already encoded by Codec.Encode, with the length of
// its plaintext.
func (w *Writer) AddSealed(t crypto.BlobType, id crypto.ID, sealed []byte, rawLen int) error {
	if _, ok := w.seen[blobKey{t, id}]; ok {
		return nil
	}
	if err := checkBlob(t, len(sealed), rawLen); err != nil {
		return fmt.Errorf("pack add %s blob %s: %w", t, id.Short(), err)
	}
	w.reserve(len(sealed))
	n := len(w.buf)
	w.buf = append(w.buf, sealed...)
	return w.record(t, id, n, rawLen)
}

// reserve makes room for n more bytes, growing at once to a quarter above
// the target size instead of doubling through it. The quarter is room for
// the blob that takes a pack past its target (a chunk is at most 4 MiB with
// default parameters), so a writer allocates its buffer once and keeps it
// for every later pack; the old exact-target buffer was grown (copied) again
// by nearly every pack's last blob. Pages of the buffer that a writer never
// fills (a metadata writer holding a few trees) are never touched.
func (w *Writer) reserve(n int) {
	if cap(w.buf)-len(w.buf) >= n {
		return
	}
	c := w.target + w.target/4
	if w.small {
		c = min(c, max(2*cap(w.buf), 1<<20))
	}
	if len(w.buf) == 0 {
		// A pack finished in pieces took the buffer: start in a
		// recycled one.
		if b, ok := w.takeSpare(max(n, c)); ok {
			w.buf = b
			return
		}
	}
	w.buf = grow(w.buf, max(n, c-len(w.buf)))
}

// grow returns b with room for n more bytes, like slices.Grow, but without
// clearing the new room: slices.Grow writes zeros over all of it, which for
// a pack buffer fresh from the OS touches (faults in) every page at once,
// while make leaves fresh memory alone until it is written. Large buffers
// get huge pages (bigbuf).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := bigbuf.Make(len(b), len(b)+n)
	copy(nb, b)
	return nb
}

func (w *Writer) record(t crypto.BlobType, id crypto.ID, off, rawLen int) error {
	if len(w.entries) >= MaxEntries || len(w.buf)+maxHeaderLen+TrailerSize > MaxPackSize {
		w.buf = w.buf[:off]
		return fmt.Errorf("pack add %s blob %s: pack is full: %w", t, id.Short(), ErrTooLarge)
	}
	w.entries = append(w.entries, Entry{Type: t, ID: id, Offset: uint32(off), Length: uint32(len(w.buf) - off), RawLength: uint32(rawLen)})
	w.seen[blobKey{t, id}] = struct{}{}
	return nil
}

// checkBlob validates a blob's type and lengths against the format limits.
func checkBlob(t crypto.BlobType, sealedLen, rawLen int) error {
	limit := MaxLen(t)
	switch {
	case limit == 0:
		return fmt.Errorf("%w: %s", ErrBlobType, t)
	case rawLen < 0 || rawLen > limit:
		return fmt.Errorf("raw length %d, limit %d: %w", rawLen, limit, ErrTooLarge)
	case sealedLen < minSealedLen || sealedLen > rawLen+minSealedLen:
		return fmt.Errorf("sealed length %d for raw length %d: %w", sealedLen, rawLen, ErrCorrupt)
	}
	return nil
}

// maxSpares bounds the recycled pack buffers a writer keeps: one per pack
// the repository uploads at a time, and one being laid out. With a single
// spare, the pack finished while two were uploading went to fresh memory,
// whose page faults (zeroing 16 MiB) cost as much as laying it out.
const maxSpares = 3

// Recycle hands back the bytes of a pack this writer finished, once nothing
// refers to them any more (the pack is stored), so a later Finish can lay
// its pack out in them instead of in fresh memory.
func (w *Writer) Recycle(data []byte) {
	if len(w.spares) < maxSpares {
		w.spares = append(w.spares, data[:0])
		return
	}
	// Keep the largest ones.
	i := slices.IndexFunc(w.spares, func(b []byte) bool { return cap(b) < cap(data) })
	if i >= 0 {
		w.spares[i] = data[:0]
	}
}

// takeSpare returns a recycled buffer of at least size bytes, if any.
func (w *Writer) takeSpare(size int) ([]byte, bool) {
	for i, b := range w.spares {
		if cap(b) >= size {
			w.spares = slices.Delete(w.spares, i, i+1)
			return b, true
		}
	}
	return nil, false
}

// Len returns the number of blobs in the pack.
func (w *Writer) Len() int { return len(w.entries) }

// Size returns the pack size if it were finished now.
func (w *Writer) Size() int64 {
	return int64(len(w.buf)) + int64(sealedHeaderLen(len(w.entries))) + TrailerSize
}

// Full reports whether the pack reached its target size or entry limit.
func (w *Writer) Full() bool {
	return w.Size() >= int64(w.target) || len(w.entries) >= MaxEntries
}

func headerPlainLen(n int) int {
	l := 1 + uvarintLen(uint64(n)) + n*entrySize
	return (l + headerPad - 1) / headerPad * headerPad
}

func sealedHeaderLen(n int) int { return headerPlainLen(n) + crypto.Overhead }

func uvarintLen(x uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], x)
}

// Finish lays the pack out: blobs in a random order, the sealed header, the
// trailer. It returns the pack's name and bytes and the entries in pack
// order, then resets the writer for the next pack. The returned data is not
// reused by the writer unless handed back with Recycle.
func (w *Writer) Finish() (name string, data []byte, entries []Entry, err error) {
	f, err := w.lay()
	if err != nil {
		return "", nil, nil, err
	}
	data, ok := w.takeSpare(int(f.Size))
	if !ok {
		data = bigbuf.Make(0, w.room(int(f.Size)))
	}
	for _, p := range f.Pieces {
		data = append(data, p...)
	}
	w.buf = w.buf[:0]
	w.reset()
	return f.Name, data, f.Entries, nil
}

// Finished is a pack laid out as pieces, without copying its blobs: views
// of the writer's buffer in pack order, then the sealed header and
// trailer. Uploading it sends the pieces one after the other; the writer
// gets its buffer back with RecycleFinished once the pack is stored.
type Finished struct {
	Name    string
	Entries []Entry // in pack order; Offset is into the pack
	Pieces  [][]byte
	Size    int64
	buf     []byte
}

// FinishPieces is Finish without the copy of every blob into a pack buffer
// (a memmove of each uploaded byte, and the page faults of fresh buffers).
// The writer starts its next pack in a recycled buffer, or a new one.
func (w *Writer) FinishPieces() (*Finished, error) {
	f, err := w.lay()
	if err != nil {
		return nil, err
	}
	w.buf = nil // the next Add takes a recycled buffer (reserve)
	w.reset()
	return f, nil
}

// lay lays the pack out as pieces under a new name: its blobs in a random
// order (views of w.buf), then the sealed header and trailer. The random
// order hides which blobs were written together (the chunks of one file,
// in file order) from anyone who sees offsets in requests.
func (w *Writer) lay() (*Finished, error) {
	if len(w.entries) == 0 {
		return nil, fmt.Errorf("finish pack: %w", ErrEmptyPack)
	}
	name, err := NewName()
	if err != nil {
		return nil, fmt.Errorf("finish pack: %w", err)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("finish pack: seed shuffle: %w", err)
	}
	order := mrand.New(mrand.NewChaCha8(seed)).Perm(len(w.entries))
	f := &Finished{Name: name, Entries: make([]Entry, 0, len(w.entries)), Pieces: make([][]byte, 0, len(w.entries)+1), buf: w.buf}
	var off int64
	for _, i := range order {
		e := w.entries[i]
		f.Pieces = append(f.Pieces, w.buf[e.Offset:e.Offset+e.Length:e.Offset+e.Length])
		e.Offset = uint32(off)
		off += int64(e.Length)
		f.Entries = append(f.Entries, e)
	}
	tail, err := w.appendHeader(make([]byte, 0, sealedHeaderLen(len(f.Entries))+TrailerSize), name, f.Entries)
	if err != nil {
		return nil, err
	}
	f.Pieces = append(f.Pieces, tail)
	f.Size = off + int64(len(tail))
	return f, nil
}

// Bytes joins the pieces: the pack as Finish would have laid it out.
func (f *Finished) Bytes() []byte {
	b := make([]byte, 0, f.Size)
	for _, p := range f.Pieces {
		b = append(b, p...)
	}
	return b
}

// RecycleFinished hands back the buffer of a pack finished in pieces once
// it is stored: nothing may use f's pieces after.
func (w *Writer) RecycleFinished(f *Finished) {
	if f.buf != nil {
		w.Recycle(f.buf)
		f.buf, f.Pieces = nil, nil
	}
}

// room is the capacity of a new pack buffer: room for any pack of this
// writer, so the buffer serves again when recycled (a pack's size varies
// with its last blob).
func (w *Writer) room(size int) int {
	if w.small {
		return size
	}
	return max(size, w.target+w.target/4+sealedHeaderLen(len(w.entries))+TrailerSize)
}

// appendHeader appends the sealed header of entries and the trailer.
func (w *Writer) appendHeader(data []byte, name string, entries []Entry) ([]byte, error) {
	headerID, err := ParseName(name)
	if err != nil {
		return nil, fmt.Errorf("finish pack: %w", err)
	}
	plain := make([]byte, 0, headerPlainLen(len(entries)))
	plain = append(plain, headerVersion)
	plain = binary.AppendUvarint(plain, uint64(len(entries)))
	for _, e := range entries {
		plain = append(plain, byte(e.Type))
		plain = append(plain, e.ID[:]...)
		plain = binary.LittleEndian.AppendUint32(plain, e.Length)
		plain = binary.LittleEndian.AppendUint32(plain, e.RawLength)
	}
	plain = plain[:cap(plain)] // zero padding to the next headerPad multiple
	hdrStart := len(data)
	data, err = w.codec.cipher.Seal(data, plain, headerID, crypto.BlobPackHeader)
	if err != nil {
		return nil, fmt.Errorf("finish pack: seal header: %w", err)
	}
	data = binary.LittleEndian.AppendUint32(data, uint32(len(data)-hdrStart))
	return append(data, trailerMagic[:]...), nil
}

// reset starts the next pack.
func (w *Writer) reset() {
	w.entries = w.entries[:0]
	clear(w.seen)
}
