// Package pack encodes blobs (zstd, then AES-GCM) and lays them out in pack
// objects: sealed blobs in random order, an encrypted header listing them,
// and a fixed-size trailer. docs/format.md describes the bytes.
package pack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/anysync/anysync/crypto"
)

// Hard caps on a blob's plaintext length. Decode never produces more, whatever
// the caller asks for, so a hostile blob cannot exhaust memory.
const (
	MaxDataLen = 8 << 20   // a file chunk (the chunker's Max is 4 MiB)
	MaxMetaLen = 256 << 20 // a tree or version blob
)

// Sealed framing: the AEAD plaintext starts with a flag byte.
const (
	flagRaw  = 0 // the rest is the blob
	flagZstd = 1 // uvarint plaintext length, then one zstd frame
)

// Compressibility probe for chunks longer than probeMin, on their first
// probeLen bytes. The byte entropy of that sample decides first: below
// entropyCompress bits per byte (text, code, most documents) the chunk is
// compressed without further ado; above entropyRaw (compressed or
// encrypted data: a random sample measures about 7.98) it is stored raw.
// In between, zstd's fastest level compresses the sample, and the chunk is
// compressed whole only if the sample shrinks below probeRatio of its
// size. Incompressible data (media, archives, encrypted files) then costs
// one pass over 8 KiB instead of a full zstd pass, and text costs no probe.
const (
	probeMin        = 16 << 10
	probeLen        = 8 << 10
	probeRatio      = 0.97
	entropyCompress = 7.5
	entropyRaw      = 7.95
)

// defaultWindow is LevelDefault's zstd window: the default maximum chunk.
const defaultWindow = 4 << 20

// Level is how hard a Codec compresses data chunks. Any level decodes with
// any codec: the level is the writer's choice, not part of the format.
type Level int

const (
	// LevelFastest is zstd's fastest level, for the drive's interactive
	// write path. Trees and versions use it too.
	LevelFastest Level = iota
	// LevelDefault is zstd's default level (zstd level 3; restic's level),
	// for backups: about 6 % smaller than LevelFastest on source code at
	// about 1.3 times its compression time.
	LevelDefault
)

func (l Level) String() string {
	switch l {
	case LevelFastest:
		return "fastest"
	case LevelDefault:
		return "default"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

func (l Level) zstdLevel() (zstd.EncoderLevel, error) {
	switch l {
	case LevelFastest:
		return zstd.SpeedFastest, nil
	case LevelDefault:
		return zstd.SpeedDefault, nil
	}
	return 0, fmt.Errorf("unknown compression level %d", int(l))
}

// Errors callers can test with errors.Is. A blob that fails authentication
// is crypto.ErrAuth (wrapped).
var (
	// ErrCorrupt means authenticated bytes or unauthenticated framing
	// (trailer, sizes, index entries) do not parse.
	ErrCorrupt = errors.New("corrupt pack data")
	// ErrTooLarge means a blob or pack exceeds a size limit.
	ErrTooLarge = errors.New("blob exceeds size limit")
	// ErrBlobType means a blob type that cannot be stored as a blob.
	ErrBlobType = errors.New("invalid blob type")
)

// MaxLen returns the hard cap on the plaintext length of a blob of type t,
// or 0 if t is not a storable blob type.
func MaxLen(t crypto.BlobType) int {
	switch t {
	case crypto.BlobData:
		return MaxDataLen
	case crypto.BlobTree, crypto.BlobVersion:
		return MaxMetaLen
	}
	return 0
}

// minSealedLen is the shortest valid sealed blob: an empty raw blob.
const minSealedLen = 1 + crypto.Overhead

// Codec turns plaintext blobs into sealed ones and back. It is safe for
// concurrent use; the write pipeline encodes chunks on several goroutines.
type Codec struct {
	cipher *crypto.BlobCipher
	level  Level
	// probe is zstd's fastest level (the compressibility probe), enc the
	// codec's level (the same encoder at LevelFastest).
	probe, enc *zstd.Encoder
	dec        *zstd.Decoder
	scratch    sync.Pool // *[]byte: framed plaintext before sealing / after opening
}

// NewCodec returns a codec sealing blobs with c, compressing at
// LevelFastest.
func NewCodec(c *crypto.BlobCipher) (*Codec, error) { return NewCodecLevel(c, LevelFastest) }

// NewCodecLevel returns a codec sealing blobs with c, compressing at
// level.
func NewCodecLevel(c *crypto.BlobCipher, level Level) (*Codec, error) {
	if c == nil {
		return nil, errors.New("new codec: nil cipher")
	}
	zl, err := level.zstdLevel()
	if err != nil {
		return nil, fmt.Errorf("new codec: %w", err)
	}
	procs := runtime.GOMAXPROCS(0)
	encoder := func(l zstd.EncoderLevel, opts ...zstd.EOption) (*zstd.Encoder, error) {
		// The AEAD authenticates everything, so zstd's own checksum is
		// wasted work.
		e, err := zstd.NewWriter(nil, append([]zstd.EOption{
			zstd.WithEncoderLevel(l),
			zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(procs)}, opts...)...)
		if err != nil {
			return nil, fmt.Errorf("new codec: zstd encoder: %w", err)
		}
		return e, nil
	}
	cd := &Codec{cipher: c, level: level}
	if cd.probe, err = encoder(zstd.SpeedFastest); err != nil {
		return nil, err
	}
	cd.enc = cd.probe
	if zl != zstd.SpeedFastest {
		// A window of the largest default chunk, not zstd's 8 MiB, and
		// history for one window, not two: each encoder keeps its history
		// for the whole run (32 MiB for two encoders otherwise), and no
		// default chunk reaches further back.
		if cd.enc, err = encoder(zl, zstd.WithWindowSize(defaultWindow), zstd.WithLowerEncoderMem(true)); err != nil {
			return nil, err
		}
	}
	// WithDecodeAllCapLimit makes DecodeAll stop at cap(dst), which Decode
	// sets to the announced length: the per-call bound against bombs. The
	// max-memory option is a second, global bound.
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(procs),
		zstd.WithDecoderMaxMemory(MaxMetaLen),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, fmt.Errorf("new codec: zstd decoder: %w", err)
	}
	cd.dec = dec
	return cd, nil
}

// Level returns the codec's compression level.
func (c *Codec) Level() Level { return c.level }

func (c *Codec) getScratch() *[]byte {
	if p, ok := c.scratch.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (c *Codec) putScratch(p *[]byte) {
	// Keep pooled buffers chunk-sized; a rare huge tree buffer is dropped.
	if cap(*p) <= 2*MaxDataLen {
		*p = (*p)[:0]
		c.scratch.Put(p)
	}
}

// Encode compresses plain when that pays, seals it under id and t, and
// appends the sealed blob to dst.
func (c *Codec) Encode(dst, plain []byte, id crypto.ID, t crypto.BlobType) ([]byte, error) {
	limit := MaxLen(t)
	if limit == 0 {
		return nil, fmt.Errorf("encode blob %s: %w: %s", id.Short(), ErrBlobType, t)
	}
	if len(plain) > limit {
		return nil, fmt.Errorf("encode %s blob %s: %d bytes, limit %d: %w", t, id.Short(), len(plain), limit, ErrTooLarge)
	}
	sp := c.getScratch()
	defer c.putScratch(sp)
	framed := c.frame(grow((*sp)[:0], 1+binary.MaxVarintLen64+len(plain)), plain)
	*sp = framed
	out, err := c.cipher.Seal(dst, framed, id, t)
	if err != nil {
		return nil, fmt.Errorf("encode %s blob %s: %w", t, id.Short(), err)
	}
	return out, nil
}

// frame appends the AEAD plaintext of a blob to buf: flag byte, then either
// the raw bytes or the length and a zstd frame, whichever is shorter.
func (c *Codec) frame(buf, plain []byte) []byte {
	if c.worthCompressing(plain) {
		buf = append(buf, flagZstd)
		buf = binary.AppendUvarint(buf, uint64(len(plain)))
		buf = c.enc.EncodeAll(plain, buf)
		if len(buf) < 1+len(plain) {
			return buf
		}
	}
	buf = append(buf[:0], flagRaw)
	return append(buf, plain...)
}

func (c *Codec) worthCompressing(plain []byte) bool {
	if len(plain) < probeMin {
		return len(plain) > 0
	}
	sample := plain[:probeLen]
	switch e := byteEntropy(sample); {
	case e < entropyCompress:
		return true
	case e > entropyRaw:
		return false
	}
	var probe [probeLen + 64]byte
	out := c.probe.EncodeAll(sample, probe[:0])
	return float64(len(out)) < probeRatio*probeLen
}

// byteEntropy returns the order-0 entropy of b in bits per byte.
func byteEntropy(b []byte) float64 {
	// Four tables break the dependency between consecutive increments of
	// one counter.
	var h [4][256]uint32
	i := 0
	for ; i+4 <= len(b); i += 4 {
		h[0][b[i]]++
		h[1][b[i+1]]++
		h[2][b[i+2]]++
		h[3][b[i+3]]++
	}
	for ; i < len(b); i++ {
		h[0][b[i]]++
	}
	n := float64(len(b))
	e := 0.0
	for v := range 256 {
		if c := h[0][v] + h[1][v] + h[2][v] + h[3][v]; c > 0 {
			p := float64(c) / n
			e -= p * math.Log2(p)
		}
	}
	return e
}

// Decode opens a sealed blob and appends its plaintext to dst. maxLen bounds
// the plaintext (<= 0 means the type's hard cap, which also bounds any
// larger maxLen). Tampering yields crypto.ErrAuth; a blob above the bound
// yields ErrTooLarge; never wrong bytes.
func (c *Codec) Decode(dst, sealed []byte, id crypto.ID, t crypto.BlobType, maxLen int) ([]byte, error) {
	maxLen, err := checkSealed(sealed, id, t, maxLen)
	if err != nil {
		return nil, err
	}
	sp := c.getScratch()
	defer c.putScratch(sp)
	framed, err := c.cipher.Open((*sp)[:0], sealed, id, t)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	*sp = framed
	out, err := c.unframe(dst, framed, maxLen)
	if err != nil {
		return nil, fmt.Errorf("decode %s blob %s: %w", t, id.Short(), err)
	}
	return out, nil
}

// DecodeInPlace is Decode for a sealed blob the caller owns and will not
// use again: it decrypts in sealed's own memory, so a blob stored raw
// (incompressible data, most of a cold read's bytes) costs no copy and no
// allocation; its plaintext is a subslice of sealed (capacity trimmed to
// its length). A compressed blob is decompressed into a new slice. sealed
// is overwritten either way, also when authentication fails.
func (c *Codec) DecodeInPlace(sealed []byte, id crypto.ID, t crypto.BlobType, maxLen int) ([]byte, error) {
	maxLen, err := checkSealed(sealed, id, t, maxLen)
	if err != nil {
		return nil, err
	}
	if len(sealed) < crypto.NonceSize {
		return nil, fmt.Errorf("decode: %w", crypto.ErrAuth)
	}
	// The AEAD output overlaps its input exactly (what cipher.AEAD allows).
	framed, err := c.cipher.Open(sealed[crypto.NonceSize:crypto.NonceSize], sealed, id, t)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(framed) > 0 && framed[0] == flagRaw {
		if len(framed)-1 > maxLen {
			return nil, fmt.Errorf("decode %s blob %s: %d bytes, limit %d: %w", t, id.Short(), len(framed)-1, maxLen, ErrTooLarge)
		}
		return framed[1:len(framed):len(framed)], nil
	}
	out, err := c.unframe(nil, framed, maxLen)
	if err != nil {
		return nil, fmt.Errorf("decode %s blob %s: %w", t, id.Short(), err)
	}
	return out, nil
}

// checkSealed returns the plaintext bound of a sealed blob of type t
// (maxLen <= 0 or above the type's hard cap means the cap), refusing an
// unknown type and a blob too long for the bound: a compressed frame is
// only stored when shorter than the raw one, so no valid blob is longer,
// and it is refused before AES is spent on it.
func checkSealed(sealed []byte, id crypto.ID, t crypto.BlobType, maxLen int) (int, error) {
	limit := MaxLen(t)
	if limit == 0 {
		return 0, fmt.Errorf("decode blob %s: %w: %s", id.Short(), ErrBlobType, t)
	}
	if maxLen <= 0 || maxLen > limit {
		maxLen = limit
	}
	if len(sealed) > maxLen+1+crypto.Overhead {
		return 0, fmt.Errorf("decode %s blob %s: %d sealed bytes for at most %d plain: %w", t, id.Short(), len(sealed), maxLen, ErrTooLarge)
	}
	return maxLen, nil
}

// unframe appends the blob held in an opened AEAD plaintext to dst, never
// producing more than maxLen bytes.
func (c *Codec) unframe(dst, framed []byte, maxLen int) ([]byte, error) {
	if len(framed) == 0 {
		return nil, fmt.Errorf("empty frame: %w", ErrCorrupt)
	}
	switch framed[0] {
	case flagRaw:
		if len(framed)-1 > maxLen {
			return nil, fmt.Errorf("%d bytes, limit %d: %w", len(framed)-1, maxLen, ErrTooLarge)
		}
		return append(dst, framed[1:]...), nil
	case flagZstd:
		n, k := binary.Uvarint(framed[1:])
		if k <= 0 {
			return nil, fmt.Errorf("bad length: %w", ErrCorrupt)
		}
		if n > uint64(maxLen) {
			return nil, fmt.Errorf("%d bytes, limit %d: %w", n, maxLen, ErrTooLarge)
		}
		base := len(dst)
		dst = slices.Grow(dst, int(n))
		out, err := c.dec.DecodeAll(framed[1+k:], dst[:base:base+int(n)])
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
				return nil, fmt.Errorf("decompresses beyond %d bytes: %w", n, ErrTooLarge)
			}
			return nil, fmt.Errorf("zstd: %v: %w", err, ErrCorrupt)
		}
		if len(out)-base != int(n) {
			return nil, fmt.Errorf("decompressed %d bytes, want %d: %w", len(out)-base, n, ErrCorrupt)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown flag %d: %w", framed[0], ErrCorrupt)
}
