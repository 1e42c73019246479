// Package chunker splits a stream into content-defined chunks with FastCDC
// (Xia et al., "FastCDC: a Fast and Efficient Content-Defined Chunking
// Approach for Data Deduplication", USENIX ATC 2016).
//
// The gear table is secret per account (crypto.GearTable), so chunk
// boundaries, and thus chunk sizes, reveal nothing to storage about which
// known files a user holds.
package chunker

import (
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/anysync/anysync/store/internal/bigbuf"
)

// Params bound the chunk sizes. Avg must be a power of two: it sets the
// number of mask bits. Chunks are at least Min bytes (except the last one of
// a stream) and at most Max bytes.
type Params struct{ Min, Avg, Max int }

// DefaultParams returns the parameters of the AnySync format:
// 256 KiB min, 1 MiB average, 4 MiB max.
func DefaultParams() Params {
	return Params{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}
}

// Limits on Params. MinAvg keeps the normalized small mask (log2(Avg)+2
// bits) meaningful; MaxMax matches the largest data blob a pack accepts.
const (
	MinAvg = 64
	MaxMax = 8 << 20
)

// maxEmptyReads is how many (0, nil) reads in a row fail a read.
const maxEmptyReads = 100

// normLevel is FastCDC's normalization level: the mask before Avg has
// normLevel more bits than log2(Avg), the mask after it normLevel fewer,
// which pulls the chunk size distribution tight around Avg.
const normLevel = 2

// ErrParams means chunker parameters are out of range.
var ErrParams = errors.New("invalid chunker parameters")

// Validate checks that p describes a usable chunker.
func (p Params) Validate() error {
	switch {
	case p.Avg < MinAvg || p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("%w: avg %d must be a power of two >= %d", ErrParams, p.Avg, MinAvg)
	case p.Min < 1 || p.Min >= p.Avg:
		return fmt.Errorf("%w: min %d must be in [1, avg %d)", ErrParams, p.Min, p.Avg)
	case p.Max <= p.Avg || p.Max > MaxMax:
		return fmt.Errorf("%w: max %d must be in (avg %d, %d]", ErrParams, p.Max, p.Avg, MaxMax)
	}
	return nil
}

// masks returns FastCDC's two judgement masks. They use the high bits of the
// gear hash: with h = h<<1 + gear[b], bit k of h depends on the last k+1
// bytes, so the top bits cover a 64-byte window while low bits would only
// see the last few bytes.
func (p Params) masks() (small, large uint64) {
	n := bits.TrailingZeros(uint(p.Avg))
	return topBits(n + normLevel), topBits(n - normLevel)
}

func topBits(n int) uint64 {
	n = max(1, min(n, 64))
	return ^uint64(0) << (64 - n)
}

// Chunker reads a stream and returns its chunks one at a time. It holds one
// buffer of 2*Max bytes and allocates nothing per chunk. A Chunker is not
// safe for concurrent use.
type Chunker struct {
	r            io.Reader
	gear         *[256]uint64
	p            Params
	small, large uint64

	buf        []byte
	start, end int   // unconsumed data is buf[start:end]
	err        error // sticky read error; io.EOF once the reader is drained
}

// New returns a chunker of r with the given gear table (crypto.GearTable of
// the account) and parameters. Invalid parameters make the first Next call
// fail with ErrParams, so construction never panics.
func New(r io.Reader, gear *[256]uint64, p Params) *Chunker {
	c := &Chunker{r: r, gear: gear, p: p}
	if err := p.Validate(); err != nil {
		c.err = err
		return c
	}
	if gear == nil {
		c.err = fmt.Errorf("%w: nil gear table", ErrParams)
		return c
	}
	c.small, c.large = p.masks()
	c.buf = bigbuf.Make(2*p.Max, 2*p.Max) // huge pages: it is filled whole
	return c
}

// Reset makes the chunker start over on r, keeping its buffer, so one
// chunker can serve many files without a 2×Max allocation each. A chunker
// whose parameters were invalid stays failed.
func (c *Chunker) Reset(r io.Reader) {
	if c.buf == nil {
		return
	}
	c.r, c.start, c.end, c.err = r, 0, 0, nil
}

// Next returns the next chunk. The slice is only valid until the next call.
// After the last chunk it returns io.EOF; a read error is returned as soon
// as it is met (wrapped), and again on every later call.
func (c *Chunker) Next() ([]byte, error) {
	if c.buf == nil {
		return nil, c.err
	}
	if c.end-c.start < c.p.Max && c.err == nil {
		c.fill()
	}
	if c.err != nil && c.err != io.EOF {
		return nil, c.err
	}
	n := c.end - c.start
	if n == 0 {
		return nil, io.EOF
	}
	cut := n
	if n > c.p.Min {
		cut = c.cut(c.buf[c.start : c.start+min(n, c.p.Max)])
	}
	chunk := c.buf[c.start : c.start+cut : c.start+cut]
	c.start += cut
	return chunk, nil
}

// fill moves the unconsumed tail to the front of the buffer and reads until
// the buffer is full, the reader is drained, or it fails.
func (c *Chunker) fill() {
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	empty := 0
	for c.end < len(c.buf) {
		n, err := c.r.Read(c.buf[c.end:])
		if n < 0 || n > len(c.buf)-c.end {
			c.err = fmt.Errorf("chunker: reader returned invalid count %d", n)
			return
		}
		c.end += n
		// Like bufio: a reader that keeps returning nothing is broken, and
		// must not make us spin forever.
		if n == 0 && err == nil {
			if empty++; empty >= maxEmptyReads {
				c.err = fmt.Errorf("chunker read: %w", io.ErrNoProgress)
				return
			}
		} else {
			empty = 0
		}
		if err == io.EOF {
			c.err = io.EOF
			return
		}
		if err != nil {
			c.err = fmt.Errorf("chunker read: %w", err)
			return
		}
	}
}

// cut returns the length of the chunk at the start of b, len(b) > Min and
// len(b) <= Max. Hashing starts at Min: FastCDC's cut-point skipping, the
// first Min bytes can never hold a boundary. The hash only depends on the
// last 64 bytes, so an edit shifts boundaries only near it.
func (c *Chunker) cut(b []byte) int {
	g := c.gear
	normal := min(c.p.Avg, len(b))
	if i, h, ok := scan(g, b[c.p.Min:normal], 0, c.small); ok {
		return c.p.Min + i
	} else if i, _, ok := scan(g, b[normal:], h, c.large); ok {
		return normal + i
	}
	return len(b)
}

// scan rolls the gear hash h over b and returns the length up to and
// including the first byte where h&mask == 0, or the final hash.
//
// It takes two bytes per step: h2 = h<<2 + (g[x]<<1 + g[y]) keeps the loop's
// dependency chain at one shift-add per two bytes (the bracket does not
// depend on h), while h1 = h<<1 + g[x] is computed beside it for the check
// at the first byte. This is FastCDC 2020's "rolling two bytes" idea.
func scan(g *[256]uint64, b []byte, h, mask uint64) (int, uint64, bool) {
	_ = g[0] // one nil check, not one per byte
	i := 0
	for n := len(b) - 1; i < n; i += 2 {
		gx := g[b[i]]
		h1 := h<<1 + gx
		h = h<<2 + (gx<<1 + g[b[i+1]])
		if h1&mask == 0 || h&mask == 0 {
			if h1&mask == 0 {
				return i + 1, h1, true
			}
			return i + 2, h, true
		}
	}
	if i < len(b) {
		h = h<<1 + g[b[i]]
		if h&mask == 0 {
			return i + 1, h, true
		}
	}
	return len(b), h, false
}
