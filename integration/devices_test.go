package integration

import (
	"os"
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
