package repo

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/anysync/anysync/store/objstore"
)

// BenchmarkWriteFile measures the whole write pipeline on incompressible
// data: chunk, ID, compression probe, seal, pack, upload to memory.
func BenchmarkWriteFile(b *testing.B) {
	data := randomData(64<<20, 11)
	for _, workers := range []int{1, 0} {
		name := fmt.Sprintf("workers=%d", workers)
		if workers == 0 {
			name = "workers=GOMAXPROCS"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; b.Loop(); i++ {
				// A new account each round, so nothing dedups.
				keys := testKeys(byte(i))
				r, err := Open(Config{Keys: keys, Objects: objstore.NewMem(), Index: NewMemIndex(), Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := r.WriteFile(context.Background(), bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
				if err := r.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
