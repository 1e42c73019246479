package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestConflictWhileOffline: two devices edit the same file while the server
// is down; after it returns both converge on the same tree, holding both
// edits: one under the name, the other as a conflict copy.
func TestConflictWhileOffline(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "conflict@example.com").signup()
	a.mount()
	if err := os.WriteFile(a.path("plan.txt"), []byte("base"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()
	b := srv.newHome(t, "conflict@example.com").login()
	b.mount()
	if got, err := os.ReadFile(b.path("plan.txt")); err != nil || string(got) != "base" {
		t.Fatalf("second device: %q %v", got, err)
	}

	_ = srv.cmd.Process.Kill()
	_ = srv.cmd.Wait()
	if err := os.WriteFile(a.path("plan.txt"), []byte("edit from A"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.path("plan.txt"), []byte("edit from B"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, srvBin := driveBinaries(t)
	srv.cmd = exec.Command(srvBin, "run", "--data", srv.data)
	srv.cmd.Stdout, srv.cmd.Stderr = &srv.log, &srv.log
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// snapshot lists name → content of the mount's top level.
	snapshot := func(h *driveHome) map[string]string {
		ents, err := os.ReadDir(h.mnt)
		if err != nil {
			return nil
		}
		m := map[string]string{}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(h.mnt, e.Name()))
			if err != nil {
				return nil
			}
			m[e.Name()] = string(b)
		}
		return m
	}
	var final map[string]string
	driveWait(t, "both devices converged on both edits", func() bool {
		sa, sb := snapshot(a), snapshot(b)
		if len(sa) != 2 || len(sb) != 2 {
			return false
		}
		for k, v := range sa {
			if sb[k] != v {
				return false
			}
		}
		final = sa
		return true
	})
	var contents, names []string
	for name, c := range final {
		names = append(names, name)
		contents = append(contents, c)
	}
	sort.Strings(contents)
	sort.Strings(names)
	if contents[0] != "edit from A" || contents[1] != "edit from B" {
		t.Fatalf("an edit was lost: %v", final)
	}
	if names[1] != "plan.txt" || !strings.HasPrefix(names[0], "plan (conflict ") || !strings.HasSuffix(names[0], ").txt") {
		t.Fatalf("conflict copy naming: %v", names)
	}
}
