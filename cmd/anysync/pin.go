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
			resp, err := daemon.CallProgress(ctx, g.home, daemon.Request{Op: daemon.OpPin, Paths: paths}, progress)
			finishBar(bar)
			if err != nil {
				return err
			}
			fmt.Printf("Pinned %d path(s): they stay on this device and work offline.\n", len(paths))
			if resp.Warning != "" {
				fmt.Fprintf(os.Stderr, "warning: %s\n", resp.Warning)
			}
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

func printPathStates(ctx context.Context, home string, args []string, asJSON bool) error {
	resp, err := daemon.Call(ctx, home, daemon.Request{Op: daemon.OpState, Paths: cloudPaths(ctx, home, args)})
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(os.Stdout, resp.States)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STATE\tFILES\tSIZE\tON DISK\tPATH\t")
	for _, s := range resp.States {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t\n", s.State, s.Files, humanBytes(s.Bytes), humanBytes(s.CachedBytes), s.Path)
	}
	return w.Flush()
}

func selectiveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "selective",
		Short: "Choose folders this device does not sync (they stay in the cloud and on other devices)",
	}
	call := func(op string, args []string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		req := daemon.Request{Op: op}
		if len(args) > 0 {
			req.Paths = cloudPaths(ctx, g.home, args)
		}
		resp, err := daemon.Call(ctx, g.home, req)
		if err != nil {
			return err
		}
		switch op {
		case daemon.OpExclude:
			fmt.Printf("Excluded %d folder(s) from this device: they are gone from the mount here, untouched in the cloud.\n", len(args))
		case daemon.OpInclude:
			fmt.Printf("Included %d folder(s) again: they are back in the mount, downloaded on demand.\n", len(args))
		}
		if len(resp.Excluded) == 0 {
			fmt.Println("No folder is excluded on this device.")
			return nil
		}
		fmt.Println("Excluded on this device:")
		for _, p := range resp.Excluded {
			fmt.Printf("  %s\n", p)
		}
		return nil
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "exclude CLOUD_PATH...",
		Short: "Hide folders on this device; nothing in them is downloaded or pinned here",
		Args:  cobra.MinimumNArgs(1),
		RunE:  func(_ *cobra.Command, args []string) error { return call(daemon.OpExclude, args) },
	}, &cobra.Command{
		Use:   "include CLOUD_PATH...",
		Short: "Show excluded folders again",
		Args:  cobra.MinimumNArgs(1),
		RunE:  func(_ *cobra.Command, args []string) error { return call(daemon.OpInclude, args) },
	}, &cobra.Command{
		Use:   "list",
		Short: "List the folders excluded on this device",
		Args:  cobra.NoArgs,
		RunE:  func(_ *cobra.Command, _ []string) error { return call(daemon.OpExcluded, nil) },
	})
	return cmd
}
