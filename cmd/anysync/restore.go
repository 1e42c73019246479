//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/anysync/anysync/store/backup"
)

func restoreCmd(g *globals) *cobra.Command {
	var (
		to      string
		version uint64
		asJSON  bool
		workers int
		inPlace bool
	)
	cmd := &cobra.Command{
		Use:   "restore PATH (--to DIR | --in-place --version N)",
		Short: "Restore a folder or file of the drive (any version) into a local folder",
		Long: `Restore CLOUD_PATH of the head version (or --version N) into DIR, with
contents, modes, times, symlinks and extended attributes. A folder's contents
go into DIR; a file goes into DIR under its name. Every byte is authenticated
and checked against its ID; nothing is written outside DIR.

With --in-place, PATH gets its content of version N back as a new version
(so the restore can be undone too); deleted files and folders come back.
PATH is a cloud path (/Docs/a.txt) or a path inside the mounted drive.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			a, err := openAccount(ctx, g.home)
			if err != nil {
				return err
			}
			defer a.Close()
			args[0] = cloudPathOf(ctx, g.home, args[0])
			if inPlace {
				if to != "" || version == 0 {
					return errors.New("--in-place takes --version N and no --to")
				}
				h, err := backup.RestoreInPlace(ctx, a.acct, args[0], version, "")
				if err != nil {
					return err
				}
				fmt.Printf("Restored %s from version #%d as version #%d.\n", args[0], version, h.Seq)
				return nil
			}
			if to == "" {
				return errors.New("say where to restore: --to DIR, or --in-place")
			}
			o := backup.RestoreOptions{Account: a.acct, CloudPath: args[0], Version: version, Target: to, Workers: workers}
			var bar *progressbar.ProgressBar
			if !asJSON && isTerminal(os.Stderr) {
				bar = newBar(os.Stderr, "restoring")
				o.Progress = func(p backup.RestoreProgress) {
					updateBar(bar, p.BytesFound, p.BytesDone, p.FilesDone, p.FilesFound, false)
				}
			}
			s, err := backup.Restore(ctx, o)
			finishBar(bar)
			if s == nil {
				return err
			}
			reportFileErrors("not restored", s.Errors)
			if asJSON {
				if jerr := printJSON(os.Stdout, struct {
					*backup.RestoreSummary
					DurationSec float64     `json:"duration_s"`
					Errors      []fileError `json:"errors"`
				}{s, s.Duration.Seconds(), fileErrors(s.Errors)}); jerr != nil {
					return jerr
				}
			} else {
				fmt.Printf("Restored %s (version #%d) to %s: %d files, %d folders, %d symlinks, %s in %s.\n",
					args[0], s.Seq, to, s.Files, s.Dirs, s.Symlinks, humanBytes(s.Bytes), s.Duration.Round(time.Millisecond))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "local folder to restore into (created if missing)")
	f.Uint64Var(&version, "version", 0, "version number to restore from (default: the newest)")
	f.BoolVar(&asJSON, "json", false, "print a JSON summary on stdout, no progress")
	f.IntVar(&workers, "workers", 0, "files restored at once (default 8)")
	f.BoolVar(&inPlace, "in-place", false, "put PATH's content of --version N back as a new version")
	return cmd
}
