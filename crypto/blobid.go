package crypto

import (
	"sync"

	"github.com/zeebo/blake3"
)

// IDHasher computes blob IDs as keyed BLAKE3 under a key derived from the
// auth key. Without that key the server cannot test whether a user holds a
// known file, because IDs of known plaintexts cannot be computed. It is safe
// for concurrent use.
type IDHasher struct {
	key Key
	// hashers recycles keyed hashers: a new one is a few KiB to allocate
	// and clear, which for small blobs costs as much as the hashing.
	hashers sync.Pool
}

// NewIDHasher returns the blob ID function of an account.
func NewIDHasher(authKey Key) *IDHasher {
	return &IDHasher{key: Derive(authKey, purposeBlobID, nil)}
}

// Sum returns the blob ID of data.
func (h *IDHasher) Sum(data []byte) ID {
	hasher, _ := h.hashers.Get().(*blake3.Hasher)
	if hasher == nil {
		var err error
		if hasher, err = blake3.NewKeyed(h.key[:]); err != nil {
			panic("blake3 keyed: " + err.Error()) // only for a key that is not 32 bytes
		}
	} else {
		hasher.Reset() // back to the keyed initial state
	}
	_, _ = hasher.Write(data)
	var id ID
	hasher.Sum(id[:0])
	h.hashers.Put(hasher)
	return id
}

// GearTable derives the content-defined chunker's gear table from the auth
// key, so chunk boundaries (and thus chunk sizes) are secret per account.
func GearTable(authKey Key) *[256]uint64 {
	seed := Derive(authKey, purposeGearTable, nil)
	x := blake3.New()
	_, _ = x.Write(seed[:])
	var buf [256 * 8]byte
	d := x.Digest()
	_, _ = d.Read(buf[:])
	var table [256]uint64
	for i := range table {
		var v uint64
		for j := 0; j < 8; j++ {
			v = v<<8 | uint64(buf[i*8+j])
		}
		table[i] = v
	}
	return &table
}
