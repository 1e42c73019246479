package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealToken(t *testing.T) {
	kp, err := NewBoxKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := boxPublicKey(&kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	if pub != kp.Public {
		t.Fatal("NewBoxKeyPair public key does not match its private key")
	}
	token := []byte("device token")
	sealed, err := SealToken(token, &kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, token) {
		t.Fatal("sealed token contains the token in the clear")
	}
	got, err := OpenToken(sealed, kp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, token) {
		t.Fatalf("OpenToken = %q", got)
	}
	again, err := SealToken(token, &kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, sealed) {
		t.Fatal("sealing is deterministic: the ephemeral key is reused")
	}

	other, err := NewBoxKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenToken(sealed, other); !errors.Is(err, ErrBoxOpen) {
		t.Fatalf("other key pair: err = %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x10
		if got, err := OpenToken(bad, kp); !errors.Is(err, ErrBoxOpen) || got != nil {
			t.Fatalf("flip at %d: err = %v", i, err)
		}
	}
	for n := 0; n < len(sealed); n++ {
		if _, err := OpenToken(sealed[:n], kp); !errors.Is(err, ErrBoxOpen) {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
	}
}
