package crypto

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestRecoveryKeyFormat(t *testing.T) {
	k := randKey(t)
	s := FormatRecoveryKey(k)
	if !regexp.MustCompile(`^[A-Z2-7]{4}(-[A-Z2-7]{4}){13}$`).MatchString(s) {
		t.Fatalf("FormatRecoveryKey = %q, want 14 dash-separated groups of 4", s)
	}
	got, err := ParseRecoveryKey(s)
	if err != nil {
		t.Fatal(err)
	}
	if got != k {
		t.Fatal("round trip changed the key")
	}
	if FormatRecoveryKey(k) != s {
		t.Fatal("formatting is not deterministic")
	}
}

func TestRecoveryKeyTolerant(t *testing.T) {
	k := randKey(t)
	s := FormatRecoveryKey(k)
	// Letters O, I and B typed as digits 0, 1 and 8 are read back.
	digits := strings.NewReplacer("O", "0", "I", "1", "B", "8").Replace(s)
	for _, form := range []string{
		strings.ToLower(s),
		strings.ReplaceAll(s, "-", "  "),
		"\t" + strings.ReplaceAll(s, "-", "\n") + "\r\n",
		digits,
	} {
		got, err := ParseRecoveryKey(form)
		if err != nil {
			t.Fatalf("parse %q: %v", form, err)
		}
		if got != k {
			t.Fatalf("parse %q gave another key", form)
		}
	}
}

// TestRecoveryKeyTypos changes every character to every other character of
// the alphabet: each single-character typo must be caught by the checksum.
// A 24-bit checksum misses one random typo in 2^24, so the keys are fixed
// (not random) to keep the test deterministic.
func TestRecoveryKeyTypos(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for trial := 0; trial < 4; trial++ {
		s := FormatRecoveryKey(Derive(Key{}, "recovery typo test", []byte{byte(trial)}))
		for i := range s {
			if s[i] == '-' {
				continue
			}
			for _, c := range []byte(alphabet) {
				if c == s[i] {
					continue
				}
				typo := s[:i] + string(c) + s[i+1:]
				if _, err := ParseRecoveryKey(typo); !errors.Is(err, ErrInvalidRecoveryKey) {
					t.Fatalf("typo %q (position %d) accepted: err = %v", typo, i, err)
				}
			}
		}
		// Two neighbouring characters swapped.
		b := []byte(strings.ReplaceAll(s, "-", ""))
		for i := 0; i+1 < len(b); i++ {
			if b[i] == b[i+1] {
				continue
			}
			sw := []byte(string(b))
			sw[i], sw[i+1] = sw[i+1], sw[i]
			if _, err := ParseRecoveryKey(string(sw)); !errors.Is(err, ErrInvalidRecoveryKey) {
				t.Fatalf("transposition at %d accepted", i)
			}
		}
	}
}

func TestRecoveryKeyMalformed(t *testing.T) {
	s := FormatRecoveryKey(randKey(t))
	for _, bad := range []string{
		"",
		s[:len(s)-1],
		s + "A",
		s + strings.Repeat("A", 1000),
		strings.Replace(s, s[:1], "9", 1),
		strings.Replace(s, s[:1], "é", 1),
		strings.Replace(s, s[:1], "=", 1),
	} {
		if _, err := ParseRecoveryKey(bad); !errors.Is(err, ErrInvalidRecoveryKey) {
			t.Errorf("ParseRecoveryKey(%q) err = %v, want ErrInvalidRecoveryKey", bad, err)
		}
	}
}

// TestRecoveryKeyGolden pins the printed form (checked against an
// independent implementation of docs/format.md).
func TestRecoveryKeyGolden(t *testing.T) {
	const want = "MBQW-EY3E-MVTG-O2DJ-NJVW-Y3LO-N5YH-C4TT-OR2X-M53Y-PF5H-W7D5-PZ73-QUYB"
	k := goldenKeys(t).Recovery
	if got := FormatRecoveryKey(k); got != want {
		t.Fatalf("FormatRecoveryKey = %s, want %s", got, want)
	}
}
