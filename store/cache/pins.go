package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/anysync/anysync/crypto"
)

// The pin log (docs/cache.md): an 8-byte magic, then fixed-size records
// appended as pins change, so pinning a batch costs one small write and one
// fsync however many blobs are pinned already.
const (
	pinMagic      = "ASPINS1\n"
	pinRecordSize = 1 + crypto.IDSize + 4 // op, id, CRC-32C of op||id
	opPin         = 1
	opUnpin       = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadPinLog means the file is not a pin log at all (wrong magic).
var errBadPinLog = errors.New("not a pin log")

// pinLogInfo describes a decoded log.
type pinLogInfo struct {
	records int // well-formed records
	damaged int // records with a bad checksum or op, skipped
	torn    int // bytes of a partial record at the end (an interrupted append)
}

// decodePins replays a pin log. Damaged records are skipped, not fatal: the
// data they describe is still on the server, and losing a pin costs only
// offline availability.
func decodePins(data []byte) (map[crypto.ID]struct{}, pinLogInfo, error) {
	var info pinLogInfo
	if len(data) < len(pinMagic) || string(data[:len(pinMagic)]) != pinMagic {
		return nil, info, errBadPinLog
	}
	pins := make(map[crypto.ID]struct{})
	rest := data[len(pinMagic):]
	for len(rest) >= pinRecordSize {
		rec := rest[:pinRecordSize]
		rest = rest[pinRecordSize:]
		body := rec[:1+crypto.IDSize]
		if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(rec[1+crypto.IDSize:]) {
			info.damaged++
			continue
		}
		var id crypto.ID
		copy(id[:], body[1:])
		switch body[0] {
		case opPin:
			pins[id] = struct{}{}
		case opUnpin:
			delete(pins, id)
		default:
			info.damaged++
			continue
		}
		info.records++
	}
	info.torn = len(rest)
	return pins, info, nil
}

// appendPinRecords encodes one record per id.
func appendPinRecords(dst []byte, op byte, ids []crypto.ID) []byte {
	for _, id := range ids {
		start := len(dst)
		dst = append(dst, op)
		dst = append(dst, id[:]...)
		dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
	}
	return dst
}

// encodePins is a compact log holding only the live pins.
func encodePins(pins map[crypto.ID]struct{}) []byte {
	ids := make([]crypto.ID, 0, len(pins))
	for id := range pins {
		ids = append(ids, id)
	}
	return appendPinRecords([]byte(pinMagic), opPin, ids)
}

// pinLog is the open, append-only pin log file.
type pinLog struct {
	path    string
	f       *os.File
	records int // records in the file, for deciding when to compact
}

// openPinLog loads the pins and opens the log for appending, compacting it
// first when it holds damage, a torn tail or mostly dead records. A file
// that is not a pin log is kept aside as pins.corrupt and replaced.
func openPinLog(path string) (*pinLog, map[crypto.ID]struct{}, pinLogInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, pinLogInfo{}, fmt.Errorf("read pin log: %w", err)
	}
	pins, info, derr := decodePins(data)
	switch {
	case err != nil: // no log yet
		pins = map[crypto.ID]struct{}{}
		info = pinLogInfo{}
		data = nil
	case derr != nil:
		if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
			return nil, nil, info, fmt.Errorf("set aside corrupt pin log: %w", rerr)
		}
		pins = map[crypto.ID]struct{}{}
		info = pinLogInfo{damaged: 1}
		data = nil
	}
	l := &pinLog{path: path, records: info.records + info.damaged}
	if data == nil || info.damaged > 0 || info.torn > 0 || l.wantCompact(len(pins)) {
		if err := l.rewrite(pins); err != nil {
			return nil, nil, info, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, info, fmt.Errorf("open pin log: %w", err)
	}
	l.f = f
	return l, pins, info, nil
}

func (l *pinLog) wantCompact(live int) bool {
	return l.records > 2*live+1024
}

// rewrite atomically replaces the log with one holding only pins.
func (l *pinLog) rewrite(pins map[crypto.ID]struct{}) error {
	if err := writeFileAtomic(l.path, encodePins(pins), true); err != nil {
		return fmt.Errorf("rewrite pin log: %w", err)
	}
	l.records = len(pins)
	return nil
}

// append writes records for ids and makes them durable before returning.
func (l *pinLog) append(op byte, ids []crypto.ID) error {
	if len(ids) == 0 {
		return nil
	}
	buf := appendPinRecords(make([]byte, 0, len(ids)*pinRecordSize), op, ids)
	if _, err := l.f.Write(buf); err != nil {
		return fmt.Errorf("append pin log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync pin log: %w", err)
	}
	l.records += len(ids)
	return nil
}

// compact rewrites the log if it is mostly dead records, and reopens it.
func (l *pinLog) compact(pins map[crypto.ID]struct{}) error {
	if !l.wantCompact(len(pins)) {
		return nil
	}
	if err := l.rewrite(pins); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("reopen pin log: %w", err)
	}
	_ = l.f.Close()
	l.f = f
	return nil
}

func (l *pinLog) close() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close pin log: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path; with durable, both the file and its folder are fsynced.
func writeFileAtomic(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name() // CreateTemp makes it 0600
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if durable {
		return syncDir(dir)
	}
	return nil
}
