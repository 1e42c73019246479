package objstore_test

import (
	"testing"

	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/objstore/objstoretest"
)

func TestMemConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.ObjectStore { return objstore.NewMem() })
}

func TestBytesReaderUnread(t *testing.T) {
	b := []byte("pack bytes")
	r := objstore.NewBytesReader(b)
	if got := r.Unread(); &got[0] != &b[0] || len(got) != len(b) {
		t.Fatal("Unread of a fresh reader is not the caller's slice")
	}
	var one [1]byte
	if _, err := r.Read(one[:]); err != nil {
		t.Fatal(err)
	}
	if r.Unread() != nil {
		t.Fatal("Unread after a read returned the slice")
	}
}
