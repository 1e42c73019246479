package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Head is an account's current version: Seq 0 and a zero Version for an
// account that has committed nothing.
type Head struct {
	Seq     uint64
	Version crypto.ID
}

// VersionInfo describes one committed version.
type VersionInfo struct {
	Seq      uint64
	Version  crypto.ID
	Parent   crypto.ID // zero for the first version
	Time     time.Time // server time of the commit
	DeviceID string
}

// IndexEntry locates a blob in a pack.
type IndexEntry struct {
	ID     crypto.ID
	Pack   string
	Offset uint32
	Length uint32
}

// CommitRequest moves the head from ExpectedSeq to Version. Parent must be
// the current head's version (zero for the first commit) and Entries the
// index entries of the version's new packs, which must be uploaded first.
// The version blob itself must be indexed, by this commit or an earlier
// one.
type CommitRequest struct {
	ExpectedSeq uint64
	Version     crypto.ID
	Parent      crypto.ID
	Entries     []IndexEntry
}

// MaxCommitEntries is the most index entries one commit may carry; commit
// more in several versions.
const MaxCommitEntries = pb.MaxCommitEntries

func optID(what string, b []byte) (crypto.ID, error) {
	var id crypto.ID
	switch len(b) {
	case 0:
		return id, nil
	case crypto.IDSize:
		copy(id[:], b)
		return id, nil
	}
	return id, fmt.Errorf("%w: %s of %d bytes", ErrBadResponse, what, len(b))
}

// HeadFromPB checks a head sent by the server.
func HeadFromPB(h *pb.Head) (Head, error) {
	if h == nil {
		return Head{}, fmt.Errorf("%w: no head", ErrBadResponse)
	}
	id, err := optID("version ID", h.GetVersionId())
	if err != nil {
		return Head{}, err
	}
	if (h.GetSeq() == 0) != id.IsZero() {
		return Head{}, fmt.Errorf("%w: head %d with version %s", ErrBadResponse, h.GetSeq(), id.Short())
	}
	return Head{Seq: h.GetSeq(), Version: id}, nil
}

func idOrNil(id crypto.ID) []byte {
	if id.IsZero() {
		return nil
	}
	return id[:]
}

// Head returns the account's current head.
func (c *Client) Head(ctx context.Context) (Head, error) {
	var out Head
	err := c.do(ctx, "get head", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.GetHead(ctx, &pb.GetHeadRequest{})
		if err != nil {
			return err
		}
		out, err = HeadFromPB(resp)
		return err
	})
	return out, err
}

// ListVersions returns up to limit versions after afterSeq, oldest first
// (the server caps a page at 1000).
func (c *Client) ListVersions(ctx context.Context, afterSeq uint64, limit int) ([]VersionInfo, error) {
	var out []VersionInfo
	err := c.do(ctx, "list versions", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.ListVersions(ctx, &pb.ListVersionsRequest{AfterSeq: afterSeq, Limit: clampLimit(limit)})
		if err != nil {
			return err
		}
		out, err = VersionsFromPB(resp.GetVersions(), afterSeq)
		return err
	})
	return out, err
}

// VersionsFromPB checks a page of versions: IDs well formed, sequence
// numbers increasing past afterSeq.
func VersionsFromPB(vs []*pb.VersionInfo, afterSeq uint64) ([]VersionInfo, error) {
	out := make([]VersionInfo, len(vs))
	prev := afterSeq
	for i, v := range vs {
		if v.GetSeq() <= prev {
			return nil, fmt.Errorf("%w: version %d listed after %d", ErrBadResponse, v.GetSeq(), prev)
		}
		prev = v.GetSeq()
		id, err := optID("version ID", v.GetVersionId())
		if err != nil {
			return nil, err
		}
		if id.IsZero() {
			return nil, fmt.Errorf("%w: version %d without ID", ErrBadResponse, v.GetSeq())
		}
		parent, err := optID("parent ID", v.GetParentId())
		if err != nil {
			return nil, err
		}
		out[i] = VersionInfo{Seq: v.GetSeq(), Version: id, Parent: parent,
			Time: time.UnixMilli(v.GetTimeUnixMs()), DeviceID: v.GetDeviceId()}
	}
	return out, nil
}

func clampLimit(limit int) uint32 {
	if limit <= 0 {
		return 0
	}
	return uint32(min(limit, 1<<31))
}

// Commit moves the head by compare-and-swap. ErrHeadMoved means another
// device committed first: fetch the new head, merge, commit again. A retry
// after a lost answer that finds its own version at the head succeeds.
func (c *Client) Commit(ctx context.Context, r CommitRequest) (Head, error) {
	if len(r.Entries) > MaxCommitEntries {
		return Head{}, fmt.Errorf("commit: %w: %d index entries, at most %d", ErrInvalid, len(r.Entries), MaxCommitEntries)
	}
	req := &pb.CommitVersionRequest{
		ExpectedSeq: r.ExpectedSeq, VersionId: idOrNil(r.Version), ParentId: idOrNil(r.Parent),
		Entries: make([]*pb.IndexEntry, len(r.Entries)),
	}
	for i, e := range r.Entries {
		req.Entries[i] = &pb.IndexEntry{BlobId: idOrNil(e.ID), Pack: e.Pack, Offset: e.Offset, Length: e.Length}
	}
	var out Head
	retried := false
	err := c.do(ctx, "commit", c.opts.callTimeout, func(ctx context.Context, try int) error {
		retried = try > 1
		resp, err := c.api.CommitVersion(ctx, req)
		if err != nil {
			return err
		}
		out, err = HeadFromPB(resp)
		return err
	})
	if retried && errors.Is(err, ErrHeadMoved) {
		if h, herr := c.Head(ctx); herr == nil && h.Version == r.Version && h.Seq == r.ExpectedSeq+1 {
			return h, nil
		}
	}
	return out, err
}

// IndexSince returns the index entries committed after version seq, whole
// versions at a time: about limit entries (the server caps it at 100000),
// but always every entry of a version. next is the version to ask after
// next time; it equals seq when there is nothing new.
func (c *Client) IndexSince(ctx context.Context, seq uint64, limit int) (entries []IndexEntry, next uint64, err error) {
	err = c.do(ctx, "index since", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.IndexSince(ctx, &pb.IndexSinceRequest{AfterSeq: seq, Limit: clampLimit(limit)})
		if err != nil {
			return err
		}
		if resp.GetNextSeq() < seq {
			return fmt.Errorf("%w: index cursor went back from %d to %d", ErrBadResponse, seq, resp.GetNextSeq())
		}
		entries, err = IndexFromPB(resp.GetEntries())
		next = resp.GetNextSeq()
		return err
	})
	return entries, next, err
}

// IndexFromPB checks index entries sent by the server.
func IndexFromPB(es []*pb.IndexEntry) ([]IndexEntry, error) {
	out := make([]IndexEntry, len(es))
	for i, e := range es {
		if len(e.GetBlobId()) != crypto.IDSize {
			return nil, fmt.Errorf("%w: blob ID of %d bytes", ErrBadResponse, len(e.GetBlobId()))
		}
		if !validHex(e.GetPack(), pb.PackNameLen) {
			return nil, fmt.Errorf("%w: bad pack name", ErrBadResponse)
		}
		if e.GetLength() == 0 || uint64(e.GetOffset())+uint64(e.GetLength()) > 1<<32-1 {
			return nil, fmt.Errorf("%w: bad blob range %d+%d", ErrBadResponse, e.GetOffset(), e.GetLength())
		}
		out[i] = IndexEntry{Pack: e.GetPack(), Offset: e.GetOffset(), Length: e.GetLength()}
		copy(out[i].ID[:], e.GetBlobId())
	}
	return out, nil
}

// HasBlobs reports which of ids the account's index already holds, in
// batches the server accepts.
func (c *Client) HasBlobs(ctx context.Context, ids []crypto.ID) ([]bool, error) {
	out := make([]bool, 0, len(ids))
	for start := 0; start < len(ids); start += pb.MaxHasBlobs {
		part := ids[start:min(start+pb.MaxHasBlobs, len(ids))]
		req := &pb.HasBlobsRequest{BlobIds: make([][]byte, len(part))}
		for i := range part {
			req.BlobIds[i] = part[i][:]
		}
		err := c.do(ctx, "has blobs", c.opts.callTimeout, func(ctx context.Context, _ int) error {
			resp, err := c.api.HasBlobs(ctx, req)
			if err != nil {
				return err
			}
			if len(resp.GetPresent()) != len(part) {
				return fmt.Errorf("%w: %d answers for %d blob IDs", ErrBadResponse, len(resp.GetPresent()), len(part))
			}
			out = append(out, resp.GetPresent()...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Watch follows the account's head. The channel gets the current head at
// once and then every new one; a reader that falls behind gets only the
// latest. Watch reconnects by itself (with backoff) when the connection
// drops or the server restarts, and sends the head again after each
// reconnect. The channel is closed when ctx ends or when the server
// refuses the token (revoked device, disabled account); Head then tells
// why. Watch itself fails only if the first connection is refused for a
// reason other than the network.
func (c *Client) Watch(ctx context.Context) (<-chan Head, error) {
	stream, err := c.openWatch(ctx)
	if err != nil {
		return nil, err
	}
	ch := make(chan Head, 1)
	go c.watchLoop(ctx, stream, ch)
	return ch, nil
}

type headStream interface {
	Recv() (*pb.Head, error)
}

// watchStream is one Watch call; cancel ends it.
type watchStream struct {
	headStream
	first  *pb.Head // the head openWatch already received
	cancel context.CancelFunc
}

func (w *watchStream) Recv() (*pb.Head, error) {
	if w.first != nil {
		h := w.first
		w.first = nil
		return h, nil
	}
	return w.headStream.Recv()
}

func (c *Client) openWatch(ctx context.Context) (*watchStream, error) {
	var out *watchStream
	err := c.do(ctx, "watch", c.opts.callTimeout, func(tctx context.Context, _ int) error {
		// The stream outlives the try's deadline, so it runs under the
		// caller's context; only the wait for its first head is bounded.
		sctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(tctx, cancel)
		s, err := c.api.Watch(c.authed(sctx), &pb.WatchRequest{})
		var first *pb.Head
		if err == nil {
			first, err = s.Recv()
		}
		if fired := !stop(); fired && ctx.Err() == nil {
			// The try's deadline cut the stream off, even if a head
			// slipped through.
			err = status.Error(codes.DeadlineExceeded, "no first head in time")
		}
		if err != nil {
			cancel()
			return err
		}
		out = &watchStream{headStream: s, first: first, cancel: cancel}
		return nil
	})
	return out, err
}

func (c *Client) watchLoop(ctx context.Context, stream *watchStream, ch chan Head) {
	defer close(ch)
	defer func() { stream.cancel() }()
	var last *Head
	backoff := c.opts.initial
	for {
		msg, err := stream.Recv()
		if err == nil {
			h, herr := HeadFromPB(msg)
			if herr != nil {
				err = herr
			} else {
				backoff = c.opts.initial
				if last == nil || *last != h {
					last = &h
					deliver(ch, h)
				}
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != io.EOF && !transient(err) && !errors.Is(err, ErrBadResponse) {
			return
		}
		for {
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, c.opts.max)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			next, err := c.openWatch(ctx)
			if err == nil {
				stream.cancel()
				stream = next
				break
			}
			if ctx.Err() != nil || !errors.Is(err, ErrUnavailable) {
				return
			}
		}
	}
}

// deliver puts h in ch, replacing a head the reader has not taken yet.
// watchLoop is the only sender, so the second send cannot block.
func deliver(ch chan Head, h Head) {
	select {
	case ch <- h:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	ch <- h
}
