package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/anysync/anysync/fs/daemon"
)

// cloudPaths translates CLI arguments (mount paths or cloud paths).
func cloudPaths(ctx context.Context, home string, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = cloudPathOf(ctx, home, a)
	}
	return out
}

func pinCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pin PATH...",
		Short: "Download files and folders and keep them on this device (offline), including files added later",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			var bar *progressbar.ProgressBar
			var progress func(daemon.Progress)
			if isTerminal(os.Stderr) {
				progress = func(p daemon.Progress) {
					if bar == nil {
						bar = progressbar.DefaultBytes(p.Total, "pinning")
					}
					_ = bar.Set64(p.Done)
				}
			}
			paths := cloudPaths(ctx, g.home, args)
			_, err := daemon.CallProgress(ctx, g.home, daemon.Request{Op: daemon.OpPin, Paths: paths}, progress)
			finishBar(bar)
			if err != nil {
				return err
			}
			fmt.Printf("Pinned %d path(s): they stay on this device and work offline.\n", len(paths))
			return nil
		},
	}
}

func unpinCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unpin PATH...",
		Short: "Let pinned files be evicted from this device's cache again",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			paths := cloudPaths(ctx, g.home, args)
			if _, err := daemon.Call(ctx, g.home, daemon.Request{Op: daemon.OpUnpin, Paths: paths}); err != nil {
				return err
			}
			fmt.Printf("Unpinned %d path(s).\n", len(paths))
			return nil
		},
	}
}

func printPathStates(ctx context.Context, home string, args []string) error {
	resp, err := daemon.Call(ctx, home, daemon.Request{Op: daemon.OpState, Paths: cloudPaths(ctx, home, args)})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STATE\tFILES\tSIZE\tON DISK\tPATH\t")
	for _, s := range resp.States {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t\n", s.State, s.Files, humanBytes(s.Bytes), humanBytes(s.CachedBytes), s.Path)
	}
	return w.Flush()
}
