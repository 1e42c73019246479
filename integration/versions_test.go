package integration

import (
	"os"
	"regexp"
	"strings"
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

	h.cli("restore", p, "--version", first, "--in-place")
	driveWait(t, "the restored file in the mount", func() bool {
		b, err := os.ReadFile(p)
		return err == nil && string(b) == "draft one"
	})
	if rows := versionRow.FindAllStringSubmatch(h.cli("versions", p), -1); len(rows) != 4 {
		t.Fatalf("the restore is not a version of its own: %v", rows)
	}
}
