package bigbuf

import "testing"

func TestMake(t *testing.T) {
	for _, c := range []struct{ length, capacity int }{{0, 10}, {5, 1 << 20}, {0, MinHuge}, {3 << 20, 9 << 20}} {
		b := Make(c.length, c.capacity)
		if len(b) != c.length || cap(b) != c.capacity {
			t.Fatalf("Make(%d, %d): len %d cap %d", c.length, c.capacity, len(b), cap(b))
		}
		b = b[:cap(b)]
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Make(%d, %d): byte %d is %d, want zero", c.length, c.capacity, i, b[i])
			}
		}
		b[len(b)-1] = 1 // writable to the end
	}
}

func BenchmarkTouch16MiB(b *testing.B) {
	b.SetBytes(16 << 20)
	for b.Loop() {
		buf := Make(16<<20, 16<<20)
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
	}
}
