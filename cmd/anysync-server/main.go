// Command anysync-server is the self-hosted AnySync server: it keeps
// accounts, versions and the blob index in SQLite, stores packs through
// rclone (a local folder, S3, ...), and serves gRPC over TLS. See
// docs/server.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/anysync/anysync/remote/server"
	"github.com/anysync/anysync/remote/server/meta"
	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "anysync-server:", err)
		os.Exit(1)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "anysync-server",
		Short:         "Self-hosted AnySync server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(initCmd(), runCmd(), fingerprintCmd(), userCmd())
	return root
}

func dataFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "data", "", "data folder (required)")
	_ = cmd.MarkFlagRequired("data")
}

func initCmd() *cobra.Command {
	var dir, quota string
	var o server.InitOptions
	cmd := &cobra.Command{
		Use:   "init --data DIR [--listen ADDR] [--storage REMOTE]",
		Short: "Create a data folder: configuration, TLS certificate, database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if o.RcloneConfig != "" {
				if o.RcloneConfig, err = filepath.Abs(o.RcloneConfig); err != nil {
					return err
				}
			}
			if quota != "" {
				if o.DefaultQuota, err = ParseSize(quota); err != nil {
					return err
				}
			}
			fp, err := server.Init(cmd.Context(), abs, o)
			if err != nil {
				return err
			}
			cfg, err := server.LoadConfig(abs)
			if err != nil {
				return err
			}
			storage := cfg.Storage
			if storage == "" {
				storage = filepath.Join(abs, server.PacksDir)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Initialised %s\n", abs)
			fmt.Fprintf(out, "Listen address: %s\n", cfg.Listen)
			fmt.Fprintf(out, "Pack storage:   %s\n", redact(storage))
			fmt.Fprintf(out, "Certificate fingerprint: %s\n", fp)
			fmt.Fprintf(out, "Give this fingerprint to your users over a channel you trust: clients pin it.\n")
			fmt.Fprintf(out, "Start the server with: anysync-server run --data %s\n", abs)
			return nil
		},
	}
	dataFlag(cmd, &dir)
	cmd.Flags().StringVar(&o.Listen, "listen", server.DefaultListen, "address to serve on")
	cmd.Flags().StringVar(&o.Storage, "storage", "", "rclone remote for packs (default: DIR/packs)")
	cmd.Flags().StringVar(&o.RcloneConfig, "rclone-config", "", "rclone config file defining named remotes")
	cmd.Flags().StringSliceVar(&o.Hosts, "host", nil, "extra host name or address for the certificate (repeatable)")
	cmd.Flags().StringVar(&quota, "default-quota", "", "quota of new accounts, e.g. 50G (default: unlimited)")
	return cmd
}

// redact hides secret-looking options of an rclone connection string.
func redact(remote string) string {
	out := remote
	for _, key := range []string{"secret_access_key=", "access_key_id=", "pass=", "token="} {
		for {
			i := strings.Index(out, key)
			if i < 0 {
				break
			}
			j := i + len(key)
			k := j
			for k < len(out) && out[k] != ',' && out[k] != ':' {
				k++
			}
			if out[j:k] == "***" {
				break
			}
			out = out[:j] + "***" + out[k:]
		}
	}
	return out
}

func runCmd() *cobra.Command {
	var dir string
	var debug bool
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "run --data DIR",
		Short: "Serve until SIGTERM or SIGINT, then drain in-flight calls",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			in, err := server.Open(ctx, dir, log)
			if err != nil {
				return err
			}
			if err := in.Run(ctx, drain); err != nil {
				return err
			}
			log.Info("stopped")
			return nil
		},
	}
	dataFlag(cmd, &dir)
	cmd.Flags().BoolVar(&debug, "debug", false, "log at debug level")
	cmd.Flags().DurationVar(&drain, "drain", 30*time.Second, "how long to wait for in-flight calls on shutdown")
	return cmd
}

func fingerprintCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "fingerprint --data DIR",
		Short: "Print the certificate fingerprint clients pin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fp, err := server.CertFingerprint(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), fp)
			return nil
		},
	}
	dataFlag(cmd, &dir)
	return cmd
}

func userCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage accounts"}
	var dir string
	withMeta := func(ctx context.Context, fn func(m meta.Store) error) error {
		m, err := server.OpenMeta(ctx, dir)
		if err != nil {
			return err
		}
		defer m.Close()
		return fn(m)
	}
	list := &cobra.Command{
		Use:   "list --data DIR",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withMeta(cmd.Context(), func(m meta.Store) error {
				us, err := server.ListUsers(cmd.Context(), m)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
				fmt.Fprintln(w, "EMAIL\tID\tUSED\tQUOTA\tDEVICES\tSTATE\tCREATED")
				for _, u := range us {
					state := "active"
					if u.Disabled {
						state = "disabled"
					}
					quota := "unlimited"
					if u.Quota > 0 {
						quota = FormatSize(u.Quota)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", u.Email, u.ID, FormatSize(u.Used), quota,
						u.Devices, state, u.Created.Format("2006-01-02"))
				}
				return w.Flush()
			})
		},
	}
	quota := &cobra.Command{
		Use:   "quota EMAIL SIZE --data DIR",
		Short: "Set an account's quota (e.g. 50G; 0 or unlimited for none)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := ParseSize(args[1])
			if err != nil {
				return err
			}
			return withMeta(cmd.Context(), func(m meta.Store) error {
				return server.SetQuota(cmd.Context(), m, args[0], q)
			})
		},
	}
	setState := func(use, short string, disabled bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " EMAIL --data DIR",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withMeta(cmd.Context(), func(m meta.Store) error {
					return server.SetDisabled(cmd.Context(), m, args[0], disabled)
				})
			},
		}
	}
	for _, c := range []*cobra.Command{list, quota,
		setState("disable", "Disable an account: its devices are refused at once", true),
		setState("enable", "Re-enable a disabled account", false)} {
		c.Flags().StringVar(&dir, "data", "", "data folder (required)")
		_ = c.MarkFlagRequired("data")
		cmd.AddCommand(c)
	}
	return cmd
}

var units = []struct {
	suffix string
	shift  uint
}{{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}, {"b", 0}, {"", 0}}

// ParseSize reads a byte count like "50G", "1.5T", "200MiB" or "1024"
// (binary units); "0" and "unlimited" mean no limit.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "unlimited" || t == "none" {
		return 0, nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	for _, u := range units {
		if !strings.HasSuffix(t, u.suffix) {
			continue
		}
		num := strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || v != v {
			return 0, fmt.Errorf("size %q: want a number with an optional unit (K, M, G, T)", s)
		}
		b := v * float64(int64(1)<<u.shift)
		if b >= 1<<62 {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return int64(b), nil
	}
	return 0, errors.New("unreachable")
}

// FormatSize prints a byte count in binary units.
func FormatSize(n int64) string {
	for _, u := range units[:4] {
		if n >= int64(1)<<u.shift {
			return strconv.FormatFloat(float64(n)/float64(int64(1)<<u.shift), 'f', 1, 64) + strings.ToUpper(u.suffix) + "iB"
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
