package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestOfflineQueueAndReconnect: with the server down the mount keeps
// working (browse, read, write), status says offline with the queue, and
// once the server is back the queue is committed and another device sees it.
func TestOfflineQueueAndReconnect(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "offline@example.com").signup()
	a.mount()
	if err := os.WriteFile(a.path("before.txt"), []byte("written online"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if st := a.cli("status"); !strings.Contains(st, "server:   online") {
		t.Fatalf("status while online:\n%s", st)
	}

	_ = srv.cmd.Process.Kill()
	_ = srv.cmd.Wait()
	if err := os.WriteFile(a.path("offline.txt"), []byte("written offline"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(a.path("new folder"), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(a.path("before.txt")); err != nil || string(b) != "written online" {
		t.Fatalf("read while offline: %q %v", b, err)
	}
	if st := a.cli("status"); !strings.Contains(st, "offline,") || !strings.Contains(st, "changes queued") {
		t.Fatalf("status while offline:\n%s", st)
	}

	// The server comes back on the same address and data.
	_, srvBin := driveBinaries(t)
	srv.cmd = exec.Command(srvBin, "run", "--data", srv.data)
	srv.cmd.Stdout, srv.cmd.Stderr = &srv.log, &srv.log
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Nobody runs `sync`: the queue goes up by itself and reaches a
	// device that is watching.
	b := srv.newHome(t, "offline@example.com").login()
	b.mount()
	driveWait(t, "the offline write on another device", func() bool {
		got, err := os.ReadFile(b.path("offline.txt"))
		return err == nil && string(got) == "written offline"
	})
	if st := a.cli("status"); !strings.Contains(st, "server:   online") {
		t.Fatalf("status after reconnect:\n%s", st)
	}
	if fi, err := os.Stat(b.path("new folder")); err != nil || !fi.IsDir() {
		t.Fatalf("offline mkdir on another device: %v", err)
	}
}
