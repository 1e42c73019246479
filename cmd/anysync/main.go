// Command anysync is the AnySync client: account sign-up and login, and the
// drive (mount daemon, status, sync, unmount).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // served only when ANYSYNC_PPROF is set
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/anysync/anysync/fs/daemon"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "anysync:", err)
		os.Exit(1)
	}
}

type globals struct {
	home string
}

func defaultHome() string {
	if h := os.Getenv("ANYSYNC_HOME"); h != "" {
		return h
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ".anysync"
	}
	return filepath.Join(dir, "anysync")
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "anysync",
		Short:         "AnySync: an end-to-end encrypted cloud drive",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", defaultHome(), "client home folder (env ANYSYNC_HOME)")
	root.AddCommand(accountCmd(g, "signup", "Create an account and sign this device in"),
		accountCmd(g, "login", "Sign this device in to an existing account"),
		mountCmd(g), statusCmd(g), syncCmd(g), unmountCmd(g),
		backupCmd(g), restoreCmd(g), checkCmd(g),
		devicesCmd(g), logoutCmd(g), recoveryKeyCmd(g), passwordCmd(g), versionsCmd(g),
		pinCmd(g), unpinCmd(g), selectiveCmd(g))
	return root
}

func accountCmd(g *globals, name, short string) *cobra.Command {
	var a daemon.Account
	var passwordFile string
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := password(passwordFile, name == "signup")
			if err != nil {
				return err
			}
			a.Home, a.Password = g.home, pw
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			if name == "signup" {
				err = daemon.Signup(ctx, a)
			} else {
				err = daemon.Login(ctx, a)
			}
			if err != nil {
				return err
			}
			fmt.Printf("Signed in as %s on %s. Next: anysync mount ~/AnySync\n", a.Email, a.Server)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.Server, "server", "", "server address host:port")
	f.StringVar(&a.Fingerprint, "fingerprint", "", "server certificate fingerprint (SHA256:...), as `anysync-server init` printed it")
	f.StringVar(&a.Email, "email", "", "account email")
	f.StringVar(&a.DeviceName, "device", "", "name of this device (default: host name)")
	f.StringVar(&passwordFile, "password-file", "", "read the password from this file (else ANYSYNC_PASSWORD, else a prompt)")
	_ = cmd.MarkFlagRequired("server")
	_ = cmd.MarkFlagRequired("email")
	return cmd
}

// password reads the password from a file, ANYSYNC_PASSWORD, or a no-echo
// prompt (twice for a new password).
func password(file string, confirm bool) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read password file: %w", err)
		}
		return bytes.TrimRight(b, "\r\n"), nil
	}
	if pw := os.Getenv("ANYSYNC_PASSWORD"); pw != "" {
		return []byte(pw), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("no password: use a terminal, ANYSYNC_PASSWORD or --password-file")
	}
	fmt.Fprint(os.Stderr, "Password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if confirm {
		fmt.Fprint(os.Stderr, "Repeat password: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("passwords differ")
		}
	}
	if len(pw) == 0 {
		return nil, errors.New("empty password")
	}
	return pw, nil
}

// readyFD is the descriptor on which a daemon started by `mount` reports
// that the drive is mounted.
const readyFD = 3

func mountCmd(g *globals) *cobra.Command {
	var foreground, notify bool
	var cacheMB, memoryMB int64
	var quiet, maxDelay time.Duration
	var frontend string
	cmd := &cobra.Command{
		Use:   "mount DIR",
		Short: "Mount the drive at DIR (returns once mounted; the daemon keeps running)",
		Long: "Mount the drive at DIR (returns once mounted; the daemon keeps running).\n\n" +
			"On Windows DIR is a drive letter (X:) or a folder that does not exist yet.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := daemon.Mountpoint(args[0])
			if err != nil {
				return err
			}
			if !foreground {
				return startDaemon(g.home, dir, frontend, cacheMB, memoryMB, quiet, maxDelay)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if addr := os.Getenv("ANYSYNC_PPROF"); addr != "" {
				// Profiling endpoint for development (net/http/pprof).
				go func() { _ = http.ListenAndServe(addr, nil) }()
			}
			opts := daemon.Options{Home: g.home, Mountpoint: dir, CacheBytes: cacheMB << 20, MemoryBytes: memoryMB << 20, Quiet: quiet, MaxDelay: maxDelay,
				Frontend: frontend}
			if notify {
				opts.Ready = func() {
					f := readyFile()
					_, _ = f.WriteString("ready\n")
					_ = f.Close()
				}
			}
			return daemon.Run(ctx, opts)
		},
	}
	cmd.Flags().BoolVar(&foreground, "foreground", false, "stay in the foreground (logs to stderr)")
	cmd.Flags().BoolVar(&notify, "notify-ready", false, "report readiness on descriptor 3 (used by the background start)")
	_ = cmd.Flags().MarkHidden("notify-ready")
	cmd.Flags().Int64Var(&cacheMB, "cache-size", daemon.DefaultCacheBytes>>20, "chunk cache size on disk in MiB (pinned files may exceed it)")
	cmd.Flags().Int64Var(&memoryMB, "memory-cache", daemon.DefaultMemoryBytes>>20, "decrypted chunks kept in memory, MiB")
	cmd.Flags().DurationVar(&quiet, "commit-quiet", time.Second, "commit after changes stop for this long")
	cmd.Flags().DurationVar(&maxDelay, "commit-max-delay", 10*time.Second, "commit at least this often while changes go on")
	cmd.Flags().StringVar(&frontend, "frontend", defaultFrontend(), "FUSE front end: "+daemon.FrontendGoFuse+" (go-fuse; Linux, macOS) or "+
		daemon.FrontendCgoFuse+" (cgofuse: WinFsp, macFUSE, libfuse 3) (env ANYSYNC_FRONTEND)")
	return cmd
}

// defaultFrontend is ANYSYNC_FRONTEND, else the platform's default.
func defaultFrontend() string {
	if f := os.Getenv("ANYSYNC_FRONTEND"); f != "" {
		return f
	}
	return daemon.DefaultFrontend()
}

// startDaemon re-executes anysync in the background, in its own session,
// logging to the home folder, and waits until it reports the mount ready.
func startDaemon(home, dir, frontend string, cacheMB, memoryMB int64, quiet, maxDelay time.Duration) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(home, daemon.LogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	start, _ := logf.Seek(0, io.SeekEnd)
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	c := exec.Command(exe, "--home", home, "mount", "--foreground", "--notify-ready", "--cache-size", fmt.Sprint(cacheMB), "--memory-cache", fmt.Sprint(memoryMB),
		"--commit-quiet", quiet.String(), "--commit-max-delay", maxDelay.String(), "--frontend", frontend, dir)
	c.Stdout, c.Stderr = logf, logf
	if err := detach(c, pw); err != nil {
		_ = pw.Close()
		return err
	}
	if err := c.Start(); err != nil {
		_ = pw.Close()
		return fmt.Errorf("start daemon: %w", err)
	}
	_ = pw.Close()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	if strings.TrimSpace(line) == "ready" {
		pid := c.Process.Pid
		_ = c.Process.Release()
		fmt.Printf("Mounted at %s (daemon pid %d, log %s).\n", dir, pid, logPath)
		return nil
	}
	_ = c.Wait()
	out, _ := os.ReadFile(logPath)
	if int64(len(out)) > start {
		out = out[start:]
	}
	return fmt.Errorf("the daemon did not start:\n%s", strings.TrimSpace(string(out)))
}

func statusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [PATH...]",
		Short: "Show the mounted drive's head version, pending uploads and errors; or each PATH's state",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if len(args) > 0 {
				return printPathStates(ctx, g.home, args, asJSON)
			}
			resp, err := daemon.Call(ctx, g.home, daemon.Request{Op: daemon.OpStatus})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(os.Stdout, resp.Status)
			}
			printStatus(resp.Status)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(st *daemon.Status) {
	if st == nil {
		return
	}
	fmt.Printf("account:  %s on %s\n", st.Email, st.Server)
	fmt.Printf("mounted:  %s\n", st.Mountpoint)
	if st.Online {
		fmt.Printf("server:   online\n")
	} else {
		fmt.Printf("server:   offline, %d changes queued (they upload when the server is back)\n", st.Pending)
	}
	head := "none yet"
	if st.HeadVersion != "" {
		head = fmt.Sprintf("#%d (%s)", st.HeadSeq, st.HeadVersion[:16])
	}
	fmt.Printf("version:  %s\n", head)
	fmt.Printf("files:    %d nodes, %d with changes to upload\n", st.Nodes, st.Pending)
	fmt.Printf("cache:    %d of %d MiB on disk (%d MiB pinned), %d MiB in memory\n", st.CacheBytes>>20, st.CacheLimit>>20, st.PinnedBytes>>20, st.MemoryBytes>>20)
	if !st.LastCommit.IsZero() {
		fmt.Printf("commit:   %d this session, last at %s\n", st.Commits, st.LastCommit.Format(time.DateTime))
	}
	if st.LastError != "" {
		fmt.Printf("error:    %s\n", st.LastError)
	}
	if st.Warning != "" {
		fmt.Printf("warning:  %s\n", st.Warning)
	}
}

func syncCmd(g *globals) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Commit local changes now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !wait {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
			}
			resp, err := daemon.Call(ctx, g.home, daemon.Request{Op: daemon.OpSync, Wait: wait})
			if err != nil {
				return err
			}
			if wait && resp.Status != nil {
				if resp.Status.Pending > 0 {
					fmt.Printf("Committed; %d files still open for writing are committed after close.\n", resp.Status.Pending)
				} else {
					fmt.Printf("All changes committed (version #%d).\n", resp.Status.HeadSeq)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "return only when every local change is committed")
	return cmd
}

func unmountCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unmount DIR",
		Short: "Commit pending changes, then unmount the drive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := daemon.Mountpoint(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			if _, err := daemon.Call(ctx, g.home, daemon.Request{Op: daemon.OpUnmount}); err != nil {
				if errors.Is(err, daemon.ErrNotRunning) {
					// A daemon that died leaves a dead mount: detach it.
					if uerr := daemon.DetachMount(dir); uerr == nil {
						fmt.Printf("Detached a stale mount at %s.\n", dir)
						return nil
					}
				}
				return err
			}
			// The daemon exits once unmounted; its socket goes with it.
			for ctx.Err() == nil {
				if _, err := daemon.Call(ctx, g.home, daemon.Request{Op: daemon.OpStatus}); errors.Is(err, daemon.ErrNotRunning) {
					// Then the process itself: a mount right after this
					// must not find the home still locked.
					if err := daemon.WaitStopped(ctx, g.home); err != nil {
						return err
					}
					fmt.Printf("Unmounted %s.\n", dir)
					return nil
				}
				time.Sleep(100 * time.Millisecond)
			}
			return ctx.Err()
		},
	}
}
