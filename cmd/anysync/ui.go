package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/anysync/anysync/fs/daemon"
)

// Helpers the drive and backup commands share.

// interruptible returns a context cancelled by SIGINT or SIGTERM.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}

// isTerminal reports whether f is a terminal (progress bars go there).
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// finishBar completes a progress bar (nil: none was shown).
func finishBar(bar *progressbar.ProgressBar) {
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
}

// humanBytes formats a byte count with binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// cloudPathOf turns a path inside this home's mounted drive into a cloud
// path (/Docs/a.txt); anything else is taken as a cloud path already.
func cloudPathOf(ctx context.Context, home, arg string) string {
	abs, err := filepath.Abs(arg)
	if err != nil {
		return arg
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := daemon.Call(ctx, home, daemon.Request{Op: "status"})
	if err != nil || resp.Status == nil || resp.Status.Mountpoint == "" {
		return arg
	}
	rel, err := filepath.Rel(resp.Status.Mountpoint, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return arg
	}
	if rel == "." {
		return "/"
	}
	return "/" + filepath.ToSlash(rel)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
