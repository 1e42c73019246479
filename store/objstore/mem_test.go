package objstore_test

import (
	"testing"

	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/objstore/objstoretest"
)

func TestMemConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.ObjectStore { return objstore.NewMem() })
}
