//go:build unix

package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/anysync/anysync/store/backup"
)

func versionsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "versions PATH",
		Short: "List the versions in which a file or folder changed (PATH in the mount, or a cloud path)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			a, err := openAccount(ctx, g.home)
			if err != nil {
				return err
			}
			defer a.Close()
			p := cloudPathOf(ctx, g.home, args[0])
			hist, err := backup.History(ctx, a.acct, p)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(os.Stdout, hist)
			}
			if len(hist) == 0 {
				fmt.Printf("%s is in no version.\n", p)
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tTIME\tDEVICE\tSIZE\t")
			for _, h := range hist {
				size := humanBytes(int64(h.Size))
				switch {
				case h.Deleted:
					size = "deleted"
				case h.Kind != "file":
					size = h.Kind
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t\n", h.Seq, h.Time.Local().Format(time.DateTime), h.Device, size)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Printf("Restore one with: anysync restore %s --version N --in-place (or --to DIR)\n", p)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
