package main

import (
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
	)
	cmd := &cobra.Command{
		Use:   "restore CLOUD_PATH --to DIR",
		Short: "Restore a folder or file of the drive (any version) into a local folder",
		Long: `Restore CLOUD_PATH of the head version (or --version N) into DIR, with
contents, modes, times, symlinks and extended attributes. A folder's contents
go into DIR; a file goes into DIR under its name. Every byte is authenticated
and checked against its ID; nothing is written outside DIR.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			a, err := openAccount(ctx, g.home)
			if err != nil {
				return err
			}
			defer a.Close()
			o := backup.RestoreOptions{Account: a.acct, CloudPath: args[0], Version: version, Target: to, Workers: workers}
			var bar *progressbar.ProgressBar
			if !asJSON && isTerminal(os.Stderr) {
				bar = newBar(os.Stderr, "restoring")
				o.Progress = func(p backup.RestoreProgress) {
					updateBar(bar, p.BytesFound, p.BytesDone, p.FilesDone, p.FilesFound, false)
				}
			}
			s, err := backup.Restore(ctx, o)
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
			if s == nil {
				return err
			}
			for _, fe := range s.Errors {
				fmt.Fprintf(os.Stderr, "anysync: not restored: %v\n", &fe)
			}
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
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
