package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The control protocol: one JSON Request per connection, answered by one
// JSON Response, over a unix socket (mode 0600) in the home folder.

// Control operations.
const (
	OpStatus  = "status"
	OpSync    = "sync"
	OpUnmount = "unmount"
)

// Request is a control request.
type Request struct {
	Op string `json:"op"`
	// Wait, for OpSync, waits until the changes are committed; otherwise
	// the committer is only woken.
	Wait bool `json:"wait,omitempty"`
}

// Status describes a running daemon.
type Status struct {
	Mountpoint  string    `json:"mountpoint"`
	Server      string    `json:"server"`
	Email       string    `json:"email"`
	HeadSeq     uint64    `json:"head_seq"`
	HeadVersion string    `json:"head_version"`
	Pending     int64     `json:"pending"`
	Nodes       int64     `json:"nodes"`
	Commits     int64     `json:"commits"`
	LastCommit  time.Time `json:"last_commit,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	CacheBytes  int64     `json:"cache_bytes"`
	CacheLimit  int64     `json:"cache_limit"`
	MemoryBytes int64     `json:"memory_bytes"`
	PinnedBytes int64     `json:"pinned_bytes"`
}

// Response is a control response.
type Response struct {
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// maxRequest bounds a control request; real ones are a few dozen bytes.
const maxRequest = 4096

// ErrBadRequest means a control request could not be understood.
var ErrBadRequest = errors.New("bad control request")

// readRequest decodes and checks one control request.
func readRequest(r io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	switch req.Op {
	case OpStatus, OpSync, OpUnmount:
		return req, nil
	}
	return Request{}, fmt.Errorf("%w: unknown operation %q", ErrBadRequest, req.Op)
}

// ErrNotRunning means no daemon answers on the home folder's socket.
var ErrNotRunning = errors.New("no anysync daemon is running for this home folder")

func listenControl(path string) (net.Listener, error) {
	_ = os.Remove(path) // left by a killed daemon; the home lock is ours
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("protect control socket: %w", err)
	}
	return ln, nil
}

func (d *daemon) serveControl(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			req, err := readRequest(bufio.NewReader(io.LimitReader(c, maxRequest)))
			if err != nil {
				_ = json.NewEncoder(c).Encode(Response{Error: err.Error()})
				return
			}
			resp := d.handle(ctx, req)
			_ = json.NewEncoder(c).Encode(resp)
		}()
	}
}

func (d *daemon) handle(ctx context.Context, req Request) Response {
	switch req.Op {
	case OpStatus:
	case OpSync:
		if !req.Wait {
			d.sync.Kick()
			break
		}
		if err := d.syncAll(ctx); err != nil {
			return Response{Error: err.Error()}
		}
	case OpUnmount:
		d.stopOnce.Do(func() { close(d.stop) })
		return Response{}
	}
	st, err := d.status(ctx)
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{Status: st}
}

// syncAll commits until nothing is pending, or only files still open for
// writing are (they are committed after close).
func (d *daemon) syncAll(ctx context.Context) error {
	for i := 0; i < 3; i++ {
		if _, err := d.sync.SyncOnce(ctx); err != nil {
			return err
		}
		st, err := d.sync.Status(ctx)
		if err != nil {
			return err
		}
		if st.Pending == 0 {
			return nil
		}
	}
	return nil
}

func (d *daemon) status(ctx context.Context) (*Status, error) {
	st, err := d.sync.Status(ctx)
	if err != nil {
		return nil, err
	}
	nodes, _, err := d.db.Stats(ctx)
	if err != nil {
		return nil, err
	}
	out := &Status{Mountpoint: d.opts.Mountpoint, Server: d.keys.Server, Email: d.keys.Email, HeadSeq: st.HeadSeq,
		Pending: st.Pending, Nodes: nodes, Commits: st.Commits, LastCommit: st.LastCommit, LastError: st.LastError}
	if !st.HeadVersion.IsZero() {
		out.HeadVersion = st.HeadVersion.String()
	}
	cs := d.cache.Stats()
	out.CacheBytes, out.CacheLimit = cs.DiskBytes, cs.DiskLimit
	out.MemoryBytes, out.PinnedBytes = cs.MemBytes, cs.PinnedBytes
	return out, nil
}

// Call sends a request to the daemon of a home folder.
func Call(ctx context.Context, home string, req Request) (*Response, error) {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", filepath.Join(home, SocketFile))
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNotRunning, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("send control request: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("read control response: %w", err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
