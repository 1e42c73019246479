package daemon

import (
	"errors"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	req, err := readRequest(strings.NewReader(`{"op":"sync","wait":true}`))
	if err != nil || req.Op != OpSync || !req.Wait {
		t.Fatalf("got %+v %v", req, err)
	}
	for _, bad := range []string{``, `{`, `{"op":"format-disk"}`, `{"op":"status","x":1}`, `[]`} {
		if _, err := readRequest(strings.NewReader(bad)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v, want ErrBadRequest", bad, err)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"op":"status"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(strings.NewReader(string(b)))
		if err == nil && req.Op != OpStatus && req.Op != OpSync && req.Op != OpUnmount {
			t.Fatalf("accepted operation %q", req.Op)
		}
	})
}
