package directio

import (
	"testing"
	"unsafe"
)

func TestBuf(t *testing.T) {
	for range 20 {
		b := Buf(5000)
		if len(b) != 5000 || cap(b) != 5000 {
			t.Fatalf("len %d cap %d", len(b), cap(b))
		}
		if p := uintptr(unsafe.Pointer(&b[0])); p%Align != 0 {
			t.Fatalf("address %#x not aligned", p)
		}
		_ = make([]byte, 100) // shift the next allocation
	}
}

func TestRound(t *testing.T) {
	for _, c := range [][3]int64{{0, 0, 0}, {1, 0, Align}, {Align, Align, Align}, {Align + 1, Align, 2 * Align}} {
		if Down(c[0]) != c[1] || Up(c[0]) != c[2] {
			t.Errorf("%d: down %d up %d, want %d %d", c[0], Down(c[0]), Up(c[0]), c[1], c[2])
		}
	}
}
