package rclonestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/unknwon/goconfig"
)

// ErrRemoteNotConfigured is returned (wrapped) when a named remote is not a
// section of the given rclone config file.
var ErrRemoteNotConfigured = errors.New("remote not in rclone config file")

// maxConfigSize bounds what readConfigSection reads; real files are a few KiB.
const maxConfigSize = 4 << 20

// readConfigSection reads one remote's options from an rclone config file.
// It reads the file itself rather than through rclone's config package,
// whose state is process-wide (one config file per process) and which may
// prompt for a password on a terminal.
func readConfigSection(path, remote string) (configmap.Simple, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rclone config: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("read rclone config %s: larger than %d bytes", path, maxConfigSize)
	}
	section, err := parseConfigSection(data, remote)
	if err != nil {
		return nil, fmt.Errorf("rclone config %s: %w", path, err)
	}
	return section, nil
}

// parseConfigSection extracts a section of an rclone config file (INI, as
// rclone reads it with goconfig, including %(key)s references).
func parseConfigSection(data []byte, remote string) (configmap.Simple, error) {
	if isEncryptedConfig(data) {
		return nil, errors.New("encrypted rclone config files are not supported; decrypt it or use a connection string")
	}
	gc, err := goconfig.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	keys := gc.GetKeyList(remote)
	if keys == nil {
		return nil, fmt.Errorf("%w: %q", ErrRemoteNotConfigured, remote)
	}
	section := configmap.Simple{}
	for _, k := range keys {
		v, err := gc.GetValue(remote, k)
		if err != nil {
			return nil, fmt.Errorf("remote %q key %q: %w", remote, k, err)
		}
		section[k] = v
	}
	if section["type"] == "" {
		return nil, fmt.Errorf("remote %q has no type", remote)
	}
	return section, nil
}

// isEncryptedConfig reports whether the first line that is not blank or a
// comment is rclone's marker of an encrypted config file.
func isEncryptedConfig(data []byte) bool {
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' || line[0] == ';' {
			continue
		}
		return bytes.HasPrefix(line, []byte("RCLONE_ENCRYPT_V"))
	}
	return false
}
