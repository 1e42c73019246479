package cache

import (
	"os"
	"runtime"
)

// syncDir makes renames and creations in dir durable. Windows cannot open a
// folder for syncing, and its renames are journaled by NTFS.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
