package integration

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

var versionRow = regexp.MustCompile(`(?m)^(\d+)\s+\S+ \S+\s+\S+\s+(.+?)\s*$`)

// TestVersionsAndRestoreInPlace: a file edited and deleted in the mount has
// a history; restoring an old version in place brings it back in the
// running mount, as a new version.
func TestVersionsAndRestoreInPlace(t *testing.T) {
	srv := startDriveServer(t)
	h := srv.newHome(t, "versions@example.com").signup()
	h.mount()
	p := h.path("notes.txt")
	for _, content := range []string{"draft one", "draft two, longer"} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		h.sync()
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.sync()

	// Both spellings of the path work: inside the mount, and in the cloud.
	for _, arg := range []string{p, "/notes.txt"} {
		out := h.cli("versions", arg)
		rows := versionRow.FindAllStringSubmatch(out, -1)
		if len(rows) != 3 || !strings.Contains(rows[2][2], "deleted") {
			t.Fatalf("versions %s: want 3 rows, the last deleted:\n%s", arg, out)
		}
	}
	rows := versionRow.FindAllStringSubmatch(h.cli("versions", p), -1)
	first := rows[0][1]

	// The same history, browsed as folders: .versions is not listed but is
	// there, with one read-only folder per version.
	root, err := os.ReadDir(h.mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range root {
		if e.Name() == ".versions" {
			t.Fatal(".versions is listed in the mount's root")
		}
	}
	vs, err := os.ReadDir(h.path(".versions"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range vs {
		names = append(names, e.Name())
	}
	if !slices.ContainsFunc(names, func(n string) bool { return regexp.MustCompile(`^` + first + `-\d{4}-\d\d-\d\dT\d{6}$`).MatchString(n) }) {
		t.Fatalf(".versions holds %v, no folder for version %s", names, first)
	}
	var firstDir string
	for _, n := range names {
		if strings.HasPrefix(n, first+"-") {
			firstDir = h.path(".versions/" + n)
		}
	}
	if b, err := os.ReadFile(firstDir + "/notes.txt"); err != nil || string(b) != "draft one" {
		t.Fatalf("notes.txt in %s: %q %v", firstDir, b, err)
	}
	if err := os.WriteFile(firstDir+"/notes.txt", []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("writing into .versions: %v, want EROFS", err)
	}
	if err := os.Remove(firstDir + "/notes.txt"); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("deleting in .versions: %v, want EROFS", err)
	}
	// A deleted file is copied back out of an old version like any file.
	driveRun(t, h.mnt, "cp", firstDir+"/notes.txt", h.path("copied back.txt"))
	if b, err := os.ReadFile(h.path("copied back.txt")); err != nil || string(b) != "draft one" {
		t.Fatalf("copy out of .versions: %q %v", b, err)
	}

	// Copied out to a folder outside the drive, from the mount's path.
	out := filepath.Join(t.TempDir(), "out")
	h.cli("restore", p, "--version", first, "--to", out)
	if b, err := os.ReadFile(filepath.Join(out, "notes.txt")); err != nil || string(b) != "draft one" {
		t.Fatalf("restore --to: %q %v", b, err)
	}

	h.cli("restore", p, "--version", first, "--in-place")
	driveWait(t, "the restored file in the mount", func() bool {
		b, err := os.ReadFile(p)
		return err == nil && string(b) == "draft one"
	})
	if rows := versionRow.FindAllStringSubmatch(h.cli("versions", p), -1); len(rows) != 4 {
		t.Fatalf("the restore is not a version of its own: %v", rows)
	}
}
