package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var deviceRow = regexp.MustCompile(`(?m)^(\S+)\s+(\S+)\s+.*\(this device\)\s*$`)

// TestDevicesRevokeAndLogout: a user lists their devices, revokes a lost
// one (its token stops working at once), and signs a device out.
func TestDevicesRevokeAndLogout(t *testing.T) {
	srv := startDriveServer(t)
	laptop := srv.newHome(t, "devices@example.com").signup()
	phone := srv.newHome(t, "devices@example.com").login()

	list := laptop.cli("devices")
	if n := strings.Count(list, "\n") - 1; n != 2 {
		t.Fatalf("devices lists %d devices, want 2:\n%s", n, list)
	}
	phoneRow := deviceRow.FindStringSubmatch(phone.cli("devices"))
	if phoneRow == nil {
		t.Fatalf("the phone does not see itself marked:\n%s", phone.cli("devices"))
	}
	phoneID := phoneRow[1]

	// The laptop revokes the lost phone; the phone is refused at once.
	laptop.cli("devices", "--revoke", phoneID)
	if out, err := phone.try("devices"); err == nil {
		t.Fatalf("a revoked device still lists devices:\n%s", out)
	}
	if list := laptop.cli("devices"); strings.Contains(list, phoneID) {
		t.Fatalf("revoked device still listed:\n%s", list)
	}

	// The recovery key is printable and well-formed.
	key := strings.TrimSpace(laptop.cli("recovery-key"))
	if !regexp.MustCompile(`^([A-Z2-7]{4}-){13}[A-Z2-7]{4}`).MatchString(key[strings.LastIndex(key, "\n")+1:]) {
		t.Fatalf("recovery key looks wrong: %q", key)
	}

	// Logout revokes the token and removes the keys.
	laptop.cli("logout")
	if _, err := os.Stat(filepath.Join(laptop.home, "access.keys")); !os.IsNotExist(err) {
		t.Fatalf("access.keys still there after logout: %v", err)
	}
	if out, err := laptop.try("devices"); err == nil || !strings.Contains(out, "not signed in") {
		t.Fatalf("devices after logout: err=%v\n%s", err, out)
	}
	// Signing in again works: the account is intact.
	laptop.login()
	laptop.cli("devices")
}

// TestPasswordChange: the new password logs a new device in, the old one no
// longer does, a wrong current password changes nothing, and the data key
// is the same (a device signed in before keeps working).
func TestPasswordChange(t *testing.T) {
	srv := startDriveServer(t)
	first := srv.newHome(t, "passwd@example.com").signup()
	bin, _ := driveBinaries(t)
	change := func(current, next string) (string, error) {
		cmd := exec.Command(bin, "--home", first.home, "password")
		cmd.Env = append(os.Environ(), "ANYSYNC_PASSWORD="+current, "ANYSYNC_NEW_PASSWORD="+next)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := change("not the password", "whatever else"); err == nil || !strings.Contains(out, "wrong current password") {
		t.Fatalf("change with a wrong current password: %v\n%s", err, out)
	}
	if out, err := change(drivePassword, "a brand new passphrase"); err != nil {
		t.Fatalf("change password: %v\n%s", err, out)
	}
	login := func(pw string) (string, error) {
		h := srv.newHome(t, "passwd@example.com")
		cmd := exec.Command(bin, "--home", h.home, "login", "--server", srv.addr, "--fingerprint", srv.fingerprint, "--email", h.email)
		cmd.Env = append(os.Environ(), "ANYSYNC_PASSWORD="+pw)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := login(drivePassword); err == nil {
		t.Fatalf("the old password still logs in:\n%s", out)
	}
	if out, err := login("a brand new passphrase"); err != nil {
		t.Fatalf("the new password does not log in: %v\n%s", err, out)
	}
	first.cli("devices") // the device signed in before the change still works
}
