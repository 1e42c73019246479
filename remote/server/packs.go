package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"github.com/anysync/anysync/store/objstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errUploadData is wrapped by upload errors that are the client's fault.
var errUploadData = errors.New("bad upload")

// uploadReader turns the data messages of an upload into an io.Reader and
// an objstore.ChunkReader (one chunk per message, written on without a
// copy). It reports io.EOF only when the client has closed its side after
// exactly the declared size, so a short or long upload never looks
// complete. The messages' data are pb.UploadBuffers (pb.Codec), given back
// once the next message has arrived and by release.
type uploadReader struct {
	stream interface {
		Recv() (*pb.UploadPackRequest, error)
	}
	cur       []byte // the last message's data
	buf       []byte // the part of cur that Read has not returned
	remaining int64
	received  int64
	err       error
}

var _ objstore.ChunkReader = (*uploadReader)(nil)

// next receives the next data message.
func (r *uploadReader) next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	msg, err := r.stream.Recv()
	if err == io.EOF {
		if r.remaining > 0 {
			r.err = fmt.Errorf("%w: stream ended %d bytes short of the declared size", errUploadData, r.remaining)
			return nil, r.err
		}
		r.err = io.EOF
		return nil, io.EOF
	}
	if err != nil {
		r.err = fmt.Errorf("receive pack data: %w", err)
		return nil, r.err
	}
	data, ok := msg.GetPart().(*pb.UploadPackRequest_Data)
	if !ok {
		r.err = fmt.Errorf("%w: a second header", errUploadData)
		return nil, r.err
	}
	n := int64(len(data.Data))
	switch {
	case n == 0:
		r.err = fmt.Errorf("%w: empty data message", errUploadData)
	case n > pb.MaxUploadChunk:
		r.err = fmt.Errorf("%w: data message of %d bytes, at most %d", errUploadData, n, pb.MaxUploadChunk)
	case n > r.remaining:
		r.err = fmt.Errorf("%w: more data than the declared size", errUploadData)
	}
	if r.err != nil {
		pb.ReleaseUploadBuffer(data.Data)
		return nil, r.err
	}
	// The previous chunk goes only now: a chunk must stay valid through
	// a call that ends in an error (objstore.ChunkReader).
	r.release()
	r.cur = data.Data
	r.remaining -= n
	r.received += n
	return r.cur, nil
}

func (r *uploadReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.next()
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// NextChunk implements objstore.ChunkReader.
func (r *uploadReader) NextChunk() ([]byte, error) {
	if len(r.buf) > 0 { // the rest of a message Read began
		b := r.buf
		r.buf = nil
		return b, nil
	}
	return r.next()
}

// release gives the current message's data back to the pool.
func (r *uploadReader) release() {
	if r.cur != nil {
		pb.ReleaseUploadBuffer(r.cur)
		r.cur, r.buf = nil, nil
	}
}

// finish reads the end of the stream after the object store took exactly
// the declared size: anything but a clean close is a bad upload.
func (r *uploadReader) finish() error {
	if r.err == io.EOF {
		return nil
	}
	if r.err != nil {
		return r.err
	}
	if b, err := r.NextChunk(); len(b) != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: more data than the declared size", errUploadData)
		}
		return err
	}
	return nil
}

// UploadPack stores a pack streamed by the client. The pack's size is
// charged to the quota before any data moves, the data goes straight to
// the object store, and the pack is visible only once all of it is there.
func (s *Service) UploadPack(stream grpc.ClientStreamingServer[pb.UploadPackRequest, pb.UploadPackResponse]) error {
	ctx := stream.Context()
	id, err := identityFrom(ctx)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("receive upload header: %w", err)
	}
	hdr := first.GetHeader()
	if err := validateUploadHeader(hdr, s.opts.MaxPackSize); err != nil {
		return err
	}
	name, size := hdr.GetName(), int64(hdr.GetSize())

	// A retry of an upload whose acknowledgement was lost: the pack is
	// there already, the client may go on.
	if p, err := s.meta.Pack(ctx, id.userID, name); err == nil {
		if p.Size != size {
			return typed(codes.AlreadyExists, pb.ReasonPackExists,
				fmt.Sprintf("pack %s exists with %d bytes, not %d", name, p.Size, size))
		}
		return stream.SendAndClose(&pb.UploadPackResponse{Size: uint64(size)})
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}

	if err := s.meta.ReservePack(ctx, id.userID, name, size, time.Now()); err != nil {
		return err
	}
	// From here on, any failure must drop the reservation, even when the
	// call's context is already cancelled.
	ok := false
	defer func() {
		if ok {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.meta.DropPack(cctx, id.userID, name); err != nil {
			s.log.Error("drop failed upload", "user", id.userID, "pack", name, "err", err)
		}
	}()

	uctx, cancel := context.WithTimeout(ctx, s.opts.UploadTimeout)
	defer cancel()
	r := &uploadReader{stream: stream, remaining: size}
	defer r.release() // Put keeps no reference to the data once it returns
	key := storageKey(id.userID, name)
	err = s.objects.Put(uctx, key, r, size)
	if err == nil {
		err = r.finish()
		if err != nil {
			s.deleteObject(ctx, key)
		}
	}
	infoFrom(ctx).set(func(c *callInfo) { c.bytes = r.received })
	if err != nil {
		if errors.Is(err, errUploadData) {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if ctx.Err() != nil {
			return status.Error(codes.Canceled, "upload cancelled by the client")
		}
		if uctx.Err() != nil {
			return status.Error(codes.DeadlineExceeded, "upload took too long")
		}
		return fmt.Errorf("store pack %s: %w", name, err)
	}
	if err := s.meta.CompletePack(ctx, id.userID, name); err != nil {
		s.deleteObject(ctx, key)
		return err
	}
	ok = true
	return stream.SendAndClose(&pb.UploadPackResponse{Size: uint64(size)})
}

func (s *Service) deleteObject(ctx context.Context, key string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.objects.Delete(cctx, key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
		s.log.Error("delete object", "key", key, "err", err)
	}
}

// DownloadRange returns a byte range of one of the caller's packs.
func (s *Service) DownloadRange(ctx context.Context, req *pb.DownloadRangeRequest) (*pb.DownloadRangeResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateDownload(req); err != nil {
		return nil, err
	}
	p, err := s.meta.Pack(ctx, id.userID, req.GetPack())
	if err != nil {
		return nil, err
	}
	off, n := int64(req.GetOffset()), int64(req.GetLength())
	if off+n > p.Size {
		return nil, status.Errorf(codes.OutOfRange, "range %d+%d lies past the end of pack %s (%d bytes)", off, n, p.Name, p.Size)
	}
	// Many clients reading 16 MiB ranges at once must not exhaust memory.
	if err := s.downloads.Acquire(ctx, n); err != nil {
		return nil, err
	}
	defer s.downloads.Release(n)
	rc, err := s.objects.GetRange(ctx, storageKey(id.userID, p.Name), off, n)
	if err != nil {
		return nil, fmt.Errorf("read pack %s: %w", p.Name, err)
	}
	defer rc.Close()
	// pb.Codec sends buf without copying, then recycles it.
	buf := pb.RangeBuffer(int(n))
	if _, err := io.ReadFull(rc, buf); err != nil {
		pb.ReleaseRangeBuffer(buf)
		return nil, fmt.Errorf("read pack %s: %w", p.Name, err)
	}
	infoFrom(ctx).set(func(c *callInfo) { c.bytes = n })
	return &pb.DownloadRangeResponse{Data: buf}, nil
}

// StatPack returns the size of one of the caller's packs.
func (s *Service) StatPack(ctx context.Context, req *pb.StatPackRequest) (*pb.PackInfo, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkPackName(req.GetName()); err != nil {
		return nil, err
	}
	p, err := s.meta.Pack(ctx, id.userID, req.GetName())
	if err != nil {
		return nil, err
	}
	return &pb.PackInfo{Name: p.Name, Size: uint64(p.Size)}, nil
}

// ListPacks pages through the caller's stored packs by name.
func (s *Service) ListPacks(ctx context.Context, req *pb.ListPacksRequest) (*pb.ListPacksResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateListPacks(req); err != nil {
		return nil, err
	}
	ps, err := s.meta.Packs(ctx, id.userID, req.GetAfter(), pageLimit(req.GetLimit(), pb.MaxPageSize))
	if err != nil {
		return nil, err
	}
	out := &pb.ListPacksResponse{Packs: make([]*pb.PackInfo, len(ps))}
	for i, p := range ps {
		out.Packs[i] = &pb.PackInfo{Name: p.Name, Size: uint64(p.Size)}
	}
	return out, nil
}

// DeletePack deletes one of the caller's packs that the index does not
// refer to. The pack is hidden first, so a concurrent commit cannot start
// referring to it while its object goes.
func (s *Service) DeletePack(ctx context.Context, req *pb.DeletePackRequest) (*pb.DeletePackResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if err := checkPackName(name); err != nil {
		return nil, err
	}
	if err := s.meta.BeginDeletePack(ctx, id.userID, name, time.Now()); err != nil {
		return nil, err
	}
	err = s.objects.Delete(ctx, storageKey(id.userID, name))
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		if rerr := s.meta.RestorePack(context.WithoutCancel(ctx), id.userID, name); rerr != nil {
			s.log.Error("restore pack after failed delete", "user", id.userID, "pack", name, "err", rerr)
		}
		return nil, fmt.Errorf("delete pack %s: %w", name, err)
	}
	if err := s.meta.DropPack(context.WithoutCancel(ctx), id.userID, name); err != nil {
		return nil, err
	}
	return &pb.DeletePackResponse{}, nil
}
