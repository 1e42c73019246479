package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "unlimited": 0, "1024": 1024, "4K": 4096, "4k": 4096, "4KiB": 4096, "4KB": 4096,
		"1.5G": 3 << 29, "2T": 2 << 40, "500MiB": 500 << 20, " 7 M ": 7 << 20, "10b": 10,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "1X", "abc", "1e30", "NaN", "1GG"} {
		if got, err := ParseSize(bad); err == nil {
			t.Errorf("%q accepted as %d", bad, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 4096: "4.0KiB", 3 << 29: "1.5GiB", 2 << 40: "2.0TiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	in := ":s3,provider=AWS,access_key_id=AKIA123,secret_access_key=SeCrEt:bucket/p"
	got := redact(in)
	if strings.Contains(got, "AKIA123") || strings.Contains(got, "SeCrEt") || !strings.HasSuffix(got, ":bucket/p") {
		t.Fatalf("redact: %q", got)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs([]string{"user", "quota", "a@b.c", "1G"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "data") {
		t.Fatalf("missing --data: %v", err)
	}
}
