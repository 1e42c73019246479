package server

import (
	"context"
	"sync"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"google.golang.org/grpc"
)

func headPB(h meta.Head) *pb.Head {
	out := &pb.Head{Seq: h.Seq}
	if !h.Version.IsZero() {
		out.VersionId = append([]byte(nil), h.Version[:]...)
	}
	return out
}

func idBytes(id crypto.ID) []byte {
	if id.IsZero() {
		return nil
	}
	return append([]byte(nil), id[:]...)
}

// GetHead returns the caller's current head.
func (s *Service) GetHead(ctx context.Context, _ *pb.GetHeadRequest) (*pb.Head, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	h, err := s.meta.Head(ctx, id.userID)
	if err != nil {
		return nil, err
	}
	return headPB(h), nil
}

// ListVersions pages through the caller's versions.
func (s *Service) ListVersions(ctx context.Context, req *pb.ListVersionsRequest) (*pb.ListVersionsResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	vs, err := s.meta.Versions(ctx, id.userID, req.GetAfterSeq(), pageLimit(req.GetLimit(), pb.MaxPageSize))
	if err != nil {
		return nil, err
	}
	out := &pb.ListVersionsResponse{Versions: make([]*pb.VersionInfo, len(vs))}
	for i, v := range vs {
		out.Versions[i] = &pb.VersionInfo{
			Seq: v.Seq, VersionId: idBytes(v.ID), ParentId: idBytes(v.Parent),
			TimeUnixMs: v.Time.UnixMilli(), DeviceId: v.DeviceID,
		}
	}
	return out, nil
}

// CommitVersion moves the caller's head by compare-and-swap, adding the
// version's index entries in the same transaction, then tells watchers.
func (s *Service) CommitVersion(ctx context.Context, req *pb.CommitVersionRequest) (*pb.Head, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	c, err := validateCommit(req)
	if err != nil {
		return nil, err
	}
	c.DeviceID, c.Time = id.deviceID, time.Now()
	h, err := s.meta.Commit(ctx, id.userID, c)
	if err != nil {
		return nil, err
	}
	s.watchers.publish(id.userID, h)
	return headPB(h), nil
}

// IndexSince returns the index entries of the versions after a sequence
// number, whole versions at a time.
func (s *Service) IndexSince(ctx context.Context, req *pb.IndexSinceRequest) (*pb.IndexSinceResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	es, next, err := s.meta.IndexSince(ctx, id.userID, req.GetAfterSeq(), pageLimit(req.GetLimit(), pb.MaxIndexPage))
	if err != nil {
		return nil, err
	}
	out := &pb.IndexSinceResponse{NextSeq: next, Entries: make([]*pb.IndexEntry, len(es))}
	for i, e := range es {
		out.Entries[i] = &pb.IndexEntry{BlobId: idBytes(e.Blob), Pack: e.Pack, Offset: e.Offset, Length: e.Length}
	}
	return out, nil
}

// HasBlobs reports which blob IDs the caller's index holds.
func (s *Service) HasBlobs(ctx context.Context, req *pb.HasBlobsRequest) (*pb.HasBlobsResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := validateHasBlobs(req)
	if err != nil {
		return nil, err
	}
	present, err := s.meta.HasBlobs(ctx, id.userID, ids)
	if err != nil {
		return nil, err
	}
	return &pb.HasBlobsResponse{Present: present}, nil
}

// Watch sends the caller's head at once and then every newer head. It ends
// when the device is revoked, the account disabled, or the server stops.
func (s *Service) Watch(_ *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.Head]) error {
	ctx := stream.Context()
	id, err := identityFrom(ctx)
	if err != nil {
		return err
	}
	sub := s.watchers.subscribe(id.userID, id.deviceID)
	defer s.watchers.unsubscribe(id.userID, sub)

	// Subscribed before reading the head, so no commit falls in between.
	h, err := s.meta.Head(ctx, id.userID)
	if err != nil {
		return err
	}
	if err := stream.Send(headPB(h)); err != nil {
		return err
	}
	sent := h.Seq
	tick := time.NewTicker(s.opts.WatchRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return errShuttingDown
		case <-sub.gone:
			return errUnauthenticated
		case <-tick.C:
			// Catches revocations and disabling done by another process
			// (the admin CLI) and any missed publish.
			if err := s.recheck(ctx); err != nil {
				return err
			}
			cur, err := s.meta.Head(ctx, id.userID)
			if err != nil {
				return err
			}
			if cur.Seq > sent {
				if err := stream.Send(headPB(cur)); err != nil {
					return err
				}
				sent = cur.Seq
			}
		case h := <-sub.ch:
			if h.Seq <= sent {
				continue // commits may publish out of order
			}
			if err := stream.Send(headPB(h)); err != nil {
				return err
			}
			sent = h.Seq
		}
	}
}

// recheck re-authenticates the token of a long-lived call.
func (s *Service) recheck(ctx context.Context) error {
	id, err := identityFrom(ctx)
	if err != nil {
		return err
	}
	now, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	if now.deviceID != id.deviceID {
		return errUnauthenticated
	}
	return nil
}

// broadcaster fans head changes out to the Watch streams of an account in
// this process.
type broadcaster struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

type subscription struct {
	device string
	ch     chan meta.Head // holds only the latest head
	gone   chan struct{}  // closed when the device is revoked
	closed bool
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: make(map[string]map[*subscription]struct{})}
}

func (b *broadcaster) subscribe(user, device string) *subscription {
	sub := &subscription{device: device, ch: make(chan meta.Head, 1), gone: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs[user] == nil {
		b.subs[user] = make(map[*subscription]struct{})
	}
	b.subs[user][sub] = struct{}{}
	return sub
}

func (b *broadcaster) unsubscribe(user string, sub *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs[user], sub)
	if len(b.subs[user]) == 0 {
		delete(b.subs, user)
	}
}

// publish hands h to every watcher of user without blocking: a slow
// watcher's stale head is replaced by the newer one.
func (b *broadcaster) publish(user string, h meta.Head) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs[user] {
		select {
		case <-sub.ch:
		default:
		}
		sub.ch <- h
	}
}

// revoke ends the Watch streams of one device.
func (b *broadcaster) revoke(user, device string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs[user] {
		if sub.device == device && !sub.closed {
			sub.closed = true
			close(sub.gone)
		}
	}
}
