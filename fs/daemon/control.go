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
	OpPin     = "pin"   // Paths: download and keep on disk; progress is streamed
	OpUnpin   = "unpin" // Paths: evictable again
	OpState   = "state" // Paths: placeholder, partial, cached, pinned, dirty, uploading
	// Selective sync: OpExclude hides folders (Paths) on this device,
	// OpInclude shows them again, OpExcluded lists them.
	OpExclude  = "exclude"
	OpInclude  = "include"
	OpExcluded = "excluded"
)

// Request is a control request.
type Request struct {
	Op string `json:"op"`
	// Wait, for OpSync, waits until the changes are committed; otherwise
	// the committer is only woken.
	Wait bool `json:"wait,omitempty"`
	// Paths are cloud paths (/Docs/a.txt) for pin, unpin and state.
	Paths []string `json:"paths,omitempty"`
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
	Online      bool      `json:"online"`
	PinnedBytes int64     `json:"pinned_bytes"`
	// Warning is something the user should act on (pinned data over the
	// cache limit).
	Warning string `json:"warning,omitempty"`
}

// Response is a control response.
type Response struct {
	Error  string      `json:"error,omitempty"`
	Status *Status     `json:"status,omitempty"`
	States []PathState `json:"states,omitempty"`
	// Progress marks an interim response of a long operation; the final
	// response has none.
	Progress *Progress `json:"progress,omitempty"`
	// Excluded lists the folders selective sync hides (OpExcluded).
	Excluded []string `json:"excluded,omitempty"`
	// Warning is something the user should act on.
	Warning string `json:"warning,omitempty"`
}

// maxRequest bounds a control request: a few dozen bytes, or a list of paths.
const maxRequest = 256 << 10

// onlineProbeTimeout bounds the server check of a status request.
const onlineProbeTimeout = 1500 * time.Millisecond

// maxPaths bounds the paths of one request.
const maxPaths = 1024

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
	case OpStatus, OpSync, OpUnmount, OpExcluded:
		if len(req.Paths) > 0 {
			return Request{}, fmt.Errorf("%w: %s takes no paths", ErrBadRequest, req.Op)
		}
		return req, nil
	case OpPin, OpUnpin, OpState, OpExclude, OpInclude:
		if len(req.Paths) == 0 || len(req.Paths) > maxPaths {
			return Request{}, fmt.Errorf("%w: %s takes 1 to %d paths", ErrBadRequest, req.Op, maxPaths)
		}
		for i, p := range req.Paths {
			c, err := cleanCloudPath(p)
			if err != nil {
				return Request{}, err
			}
			req.Paths[i] = c
		}
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
			enc := json.NewEncoder(c)
			resp := d.handle(ctx, req, func(p Progress) { _ = enc.Encode(Response{Progress: &p}) })
			_ = enc.Encode(resp)
		}()
	}
}

func (d *daemon) handle(ctx context.Context, req Request, progress func(Progress)) Response {
	switch req.Op {
	case OpPin:
		var last time.Time
		throttled := func(p Progress) {
			if now := time.Now(); now.Sub(last) > 200*time.Millisecond || p.Done == p.Total {
				last = now
				progress(p)
			}
		}
		if err := d.pin(ctx, req.Paths, throttled); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{Warning: d.pinWarning()}
	case OpUnpin:
		if err := d.unpin(ctx, req.Paths); err != nil {
			return Response{Error: err.Error()}
		}
	case OpState:
		states, err := d.states(ctx, req.Paths)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{States: states}
	case OpExclude, OpInclude:
		f := d.exclude
		if req.Op == OpInclude {
			f = d.include
		}
		if err := f(ctx, req.Paths); err != nil {
			return Response{Error: err.Error()}
		}
		fallthrough
	case OpExcluded:
		ps, err := d.loadExcluded(ctx)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{Excluded: ps}
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
	// Reachability, asked now with a short deadline: a status must answer
	// quickly when the server is down.
	hctx, cancel := context.WithTimeout(ctx, onlineProbeTimeout)
	defer cancel()
	_, herr := d.client.Head(hctx)
	out.Online = herr == nil
	out.MemoryBytes, out.PinnedBytes = cs.MemBytes, cs.PinnedBytes
	out.Warning = d.pinWarning()
	return out, nil
}

// pinWarning says when pinned data no longer fits the cache limit: it is
// kept anyway, but everything else is evicted to make room.
func (d *daemon) pinWarning() string {
	cs := d.cache.Stats()
	if cs.PinnedBytes <= cs.DiskLimit {
		return ""
	}
	return fmt.Sprintf("pinned files take %d MiB, more than the cache limit of %d MiB: they are kept, but nothing else stays cached; unpin some or mount with a larger --cache-size",
		cs.PinnedBytes>>20, cs.DiskLimit>>20)
}

// Call sends a request to the daemon of a home folder.
func Call(ctx context.Context, home string, req Request) (*Response, error) {
	return CallProgress(ctx, home, req, nil)
}

// CallProgress is Call for long operations: progress, if set, gets the
// interim reports the daemon streams before its final response.
func CallProgress(ctx context.Context, home string, req Request, progress func(Progress)) (*Response, error) {
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
	dec := json.NewDecoder(c)
	for {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			return nil, fmt.Errorf("read control response: %w", err)
		}
		if resp.Progress != nil {
			if progress != nil {
				progress(*resp.Progress)
			}
			continue
		}
		if resp.Error != "" {
			return &resp, errors.New(resp.Error)
		}
		return &resp, nil
	}
}
