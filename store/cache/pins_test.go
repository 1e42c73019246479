package cache

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"github.com/anysync/anysync/crypto"
)

func TestPinLogRoundTrip(t *testing.T) {
	pins := map[crypto.ID]struct{}{{1}: {}, {2, 3}: {}, {255}: {}}
	got, info, err := decodePins(encodePins(pins))
	if err != nil || !maps.Equal(got, pins) || info.records != 3 || info.damaged != 0 || info.torn != 0 {
		t.Fatalf("round trip: %v %+v %v", got, info, err)
	}
	// Replay order matters: pin, unpin, pin again.
	log := appendPinRecords([]byte(pinMagic), opPin, []crypto.ID{{9}})
	log = appendPinRecords(log, opUnpin, []crypto.ID{{9}, {1}})
	log = appendPinRecords(log, opPin, []crypto.ID{{8}})
	got, _, _ = decodePins(log)
	if _, ok := got[crypto.ID{8}]; !ok || len(got) != 1 {
		t.Errorf("replay = %v, want only {8}", got)
	}
	// A flipped bit damages one record, not the rest.
	bad := bytes.Clone(log)
	bad[len(pinMagic)+5] ^= 0x10
	got, info, _ = decodePins(bad)
	if info.damaged != 1 || len(got) != 1 {
		t.Errorf("damaged log: %v %+v", got, info)
	}
	if _, _, err := decodePins([]byte("ASPINS2\n")); err == nil {
		t.Error("wrong magic accepted")
	}
}

// The pin log is read from disk after crashes and disk errors: it must
// never panic, and what it yields must survive a compaction unchanged.
func FuzzDecodePins(f *testing.F) {
	f.Add([]byte(pinMagic))
	f.Add(encodePins(map[crypto.ID]struct{}{{1}: {}}))
	f.Add(appendPinRecords(appendPinRecords([]byte(pinMagic), opPin, []crypto.ID{{1}, {2}}), opUnpin, []crypto.ID{{1}}))
	f.Add([]byte("ASPINS1\n\x01\x02"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pins, info, err := decodePins(data)
		if err != nil {
			return
		}
		if info.torn >= pinRecordSize || info.torn < 0 {
			t.Fatalf("torn tail of %d bytes", info.torn)
		}
		again, info2, err := decodePins(encodePins(pins))
		if err != nil || !maps.Equal(pins, again) || info2.damaged != 0 || info2.torn != 0 {
			t.Fatalf("compaction changed the pins: %v vs %v (%v)", pins, again, err)
		}
	})
}

func TestParseBlobName(t *testing.T) {
	id := crypto.ID{0xab, 0xcd}
	if got, ok := parseBlobName("ab", id.String()); !ok || got != id {
		t.Errorf("canonical name rejected")
	}
	for _, c := range [][2]string{{"cd", id.String()}, {"AB", strings.ToUpper(id.String())}, {"ab", id.String() + ".tmp"}, {"ab", "ab"}, {"", ""}} {
		if _, ok := parseBlobName(c[0], c[1]); ok {
			t.Errorf("parseBlobName(%q, %q) accepted", c[0], c[1])
		}
	}
}

// File names in the cache folder are read back at Open.
func FuzzParseBlobName(f *testing.F) {
	f.Add("ab", crypto.ID{0xab}.String())
	f.Add("AB", "AB00")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, shard, name string) {
		id, ok := parseBlobName(shard, name)
		if ok && (id.String() != name || name[:2] != shard) {
			t.Fatalf("accepted %q/%q as %s", shard, name, id)
		}
	})
}
