package localdb

import (
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// The redo log records, for each Update since the last batch commit, the
// write statements it ran, in order. Replaying them onto the committed
// database reproduces the state the mount had acknowledged. Format (one page:
// docs/format.md, "Redo log"):
//
//	record := bodyLen u32le | crc32c(body) u32le | body
//	body   := seq u64le | nstmts u32le | stmt*
//	stmt   := len(sql) uvarint | sql | nargs uvarint | arg*
//	arg    := tag byte | value   (argNil, argInt: zigzag varint, argFloat: 8 bytes,
//	          argFalse, argTrue, argText/argBlob: uvarint length | bytes, argNilBlob)

const (
	argNil = iota
	argInt
	argFloat
	argFalse
	argTrue
	argText
	argBlob
	argNilBlob // a nil []byte, which SQLite binds differently from an empty one
)

// maxRedoRecord bounds one record: an Update writes at most a few inline
// files' content (InlineMax each) and a commit's batch of rows.
const maxRedoRecord = 256 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// stmtRec is one recorded write statement.
type stmtRec struct {
	query string
	args  []any
}

// recordHeader is the record's framing and fixed fields: bodyLen, crc,
// seq, nstmts.
const recordHeader = 4 + 4 + 8 + 4

// recorder collects one Update's statements, already encoded in place
// after room for the header, so callers may reuse their argument slices
// and a record is written without another copy.
type recorder struct {
	n      int
	buf    []byte
	failed bool // a statement ran but could not be logged
}

// reset empties r for the next Update, keeping a buffer of sensible size.
func (r *recorder) reset() {
	if cap(r.buf) > 4<<20 {
		r.buf = nil
	}
	r.buf = append(r.buf[:0], make([]byte, recordHeader)...)
	r.n, r.failed = 0, false
}

func (r *recorder) add(query string, args []any) error {
	if len(r.buf) < recordHeader {
		r.reset()
	}
	r.buf = binary.AppendUvarint(r.buf, uint64(len(query)))
	r.buf = append(r.buf, query...)
	r.buf = binary.AppendUvarint(r.buf, uint64(len(args)))
	for _, a := range args {
		var err error
		if r.buf, err = appendArg(r.buf, a); err != nil {
			r.failed = true
			return fmt.Errorf("record statement %.40q: %w", query, err)
		}
	}
	r.n++
	return nil
}

func appendArg(b []byte, a any) ([]byte, error) {
	if v, ok := a.(driver.Valuer); ok {
		var err error
		if a, err = v.Value(); err != nil {
			return b, err
		}
	}
	if bs, ok := a.([]byte); ok {
		if bs == nil {
			return append(b, argNilBlob), nil
		}
		b = slices.Grow(b, 1+binary.MaxVarintLen64+len(bs))
		b = append(b, argBlob)
		b = binary.AppendUvarint(b, uint64(len(bs)))
		return append(b, bs...), nil
	}
	v, err := driver.DefaultParameterConverter.ConvertValue(a)
	if err != nil {
		return b, err
	}
	switch v := v.(type) {
	case nil:
		return append(b, argNil), nil
	case int64:
		return binary.AppendVarint(append(b, argInt), v), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, argFloat), math.Float64bits(v)), nil
	case bool:
		if v {
			return append(b, argTrue), nil
		}
		return append(b, argFalse), nil
	case string:
		b = append(b, argText)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...), nil
	case []byte:
		if v == nil {
			return append(b, argNilBlob), nil
		}
		b = append(b, argBlob)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...), nil
	}
	return b, fmt.Errorf("argument of type %T cannot be logged", a)
}

// encodeRecord frames r's statements as record seq, in r's buffer.
func encodeRecord(seq uint64, r *recorder) []byte {
	if len(r.buf) < recordHeader {
		r.reset()
	}
	b := r.buf
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)-8))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], uint32(r.n))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], crcTable))
	return b
}

// errTorn means the log ends inside a record: the write of its last record
// did not finish (the process died). Everything before it is intact.
var errTorn = errors.New("redo log ends inside a record")

// errChecksum means a record's bytes are not what was written.
var errChecksum = errors.New("redo record checksum mismatch")

// decodeRecord decodes the record at the start of b and returns it and
// its length. A record cut short is errTorn.
func decodeRecord(b []byte) (seq uint64, stmts []stmtRec, n int, err error) {
	if len(b) < 8 {
		return 0, nil, 0, errTorn
	}
	size := binary.LittleEndian.Uint32(b)
	if size > maxRedoRecord {
		return 0, nil, 0, fmt.Errorf("redo record of %d bytes: %w", size, errTorn)
	}
	if uint64(len(b)-8) < uint64(size) {
		return 0, nil, 0, errTorn
	}
	body := b[8 : 8+int(size)]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, errChecksum
	}
	if len(body) < recordHeader-8 {
		return 0, nil, 0, fmt.Errorf("redo record of %d bytes: malformed", size)
	}
	seq = binary.LittleEndian.Uint64(body)
	count := uint64(binary.LittleEndian.Uint32(body[8:]))
	d := decoder{b: body[12:]}
	if count > uint64(len(d.b)) { // each statement takes at least two bytes
		d.fail("statement count %d", count)
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		q := string(d.bytes())
		nargs := d.uvarint()
		if d.err == nil && nargs > uint64(len(d.b)) {
			d.fail("argument count %d", nargs)
		}
		args := make([]any, 0, min(nargs, 64))
		for j := uint64(0); j < nargs && d.err == nil; j++ {
			args = append(args, d.arg())
		}
		stmts = append(stmts, stmtRec{query: q, args: args})
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return 0, nil, 0, fmt.Errorf("redo record %d: %w", seq, d.err)
	}
	return seq, stmts, 8 + int(size), nil
}

// decoder reads a record body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("malformed: "+format, args...)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d past the end", n)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) arg() any {
	if len(d.b) == 0 {
		d.fail("missing argument")
		return nil
	}
	tag := d.b[0]
	d.b = d.b[1:]
	switch tag {
	case argNil:
		return nil
	case argInt:
		v, n := binary.Varint(d.b)
		if n <= 0 {
			d.fail("bad varint")
			return nil
		}
		d.b = d.b[n:]
		return v
	case argFloat:
		if len(d.b) < 8 {
			d.fail("short float")
			return nil
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
		return v
	case argFalse:
		return false
	case argTrue:
		return true
	case argText:
		return string(d.bytes())
	case argBlob:
		v := d.bytes()
		if v == nil && d.err == nil {
			v = []byte{}
		}
		return v
	case argNilBlob:
		return []byte(nil)
	}
	d.fail("argument tag %d", tag)
	return nil
}
