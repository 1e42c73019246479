package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// errNoBackupOnWindows: store/backup walks and restores folders through
// POSIX *at system calls; on Windows only the drive runs.
var errNoBackupOnWindows = errors.New("backup, restore, check and versions are not available on Windows yet; the drive (anysync mount) is")

func unavailableCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short + " (not on Windows yet)",
		RunE:  func(*cobra.Command, []string) error { return errNoBackupOnWindows },
	}
}

func backupCmd(*globals) *cobra.Command {
	return unavailableCmd("backup DIR", "Back up a folder")
}

func restoreCmd(*globals) *cobra.Command {
	return unavailableCmd("restore", "Restore a backup")
}

func checkCmd(*globals) *cobra.Command {
	return unavailableCmd("check", "Verify the account's stored data")
}

func versionsCmd(*globals) *cobra.Command {
	return unavailableCmd("versions PATH", "List the versions of a file or folder")
}
