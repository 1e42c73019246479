//go:build unix

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/anysync/anysync/store/backup"
)

func checkCmd(g *globals) *cobra.Command {
	var (
		all, readData, asJSON bool
		subset                string
	)
	cmd := &cobra.Command{
		Use:   "check [--all] [--read-data [--subset P%]]",
		Short: "Verify that everything the drive refers to is stored intact",
		Long: `Check that every blob the head version (or --all versions) refers to is in
the index and in its pack as the index says. --read-data also downloads the
packs (or a random --subset of them) and authenticates every blob, naming any
corrupt pack.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pct, err := parsePercent(subset)
			if err != nil {
				return err
			}
			if pct != 0 && !readData {
				return fmt.Errorf("--subset needs --read-data")
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			a, err := openAccount(ctx, g.home)
			if err != nil {
				return err
			}
			defer a.Close()
			o := backup.CheckOptions{Account: a.acct, All: all, ReadData: readData, Subset: pct}
			if !asJSON {
				o.Logf = func(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) }
			}
			rep, err := backup.Check(ctx, o)
			if rep == nil {
				return err
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(os.Stderr, "anysync: %v\n", &p)
			}
			if asJSON {
				probs := make([]string, len(rep.Problems))
				for i := range rep.Problems {
					probs[i] = rep.Problems[i].Error()
				}
				if jerr := printJSON(os.Stdout, struct {
					*backup.CheckReport
					Problems []string `json:"problems"`
				}{rep, probs}); jerr != nil {
					return jerr
				}
			} else if err == nil {
				fmt.Printf("No problems: %d version(s), %d trees, %d data blobs in %d packs; %d packs (%s) read and authenticated.\n",
					rep.Versions, rep.Trees, rep.DataBlobs, rep.Packs, rep.PacksRead, humanBytes(rep.BytesRead))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&all, "all", false, "check every version, not only the newest")
	f.BoolVar(&readData, "read-data", false, "download packs and authenticate every blob")
	f.StringVar(&subset, "subset", "", "with --read-data, read only this percentage of packs, e.g. 10%")
	f.BoolVar(&asJSON, "json", false, "print a JSON report on stdout")
	return cmd
}

// parsePercent parses "10%" or "10" as 10; empty is 0.
func parsePercent(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v <= 0 || v > 100 {
		return 0, fmt.Errorf("--subset %q: want a percentage in (0, 100]", s)
	}
	return v, nil
}
