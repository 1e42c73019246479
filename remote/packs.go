package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/store/objstore"
	"google.golang.org/grpc"
)

// PackInfo is a stored pack.
type PackInfo struct {
	Name string
	Size int64
}

func checkPackName(name string) error {
	if !validHex(name, pb.PackNameLen) {
		return fmt.Errorf("%w: pack name %q is not %d lowercase hex digits", ErrInvalid, name, pb.PackNameLen)
	}
	return nil
}

// transferTimeout is the deadline of one try of moving n bytes: the base
// transfer time plus a second per 64 KiB, so a slow link is slow, not
// stuck in a loop of timed-out retries.
func (c *Client) transferTimeout(n int64) time.Duration {
	return c.opts.transferTime + time.Duration(n>>16)*time.Second
}

// UploadPack stores a pack. It returns once the server has the whole pack
// in storage. A failed upload is retried whole; an upload whose answer was
// lost finds the pack there on retry and succeeds.
func (c *Client) UploadPack(ctx context.Context, name string, data []byte) error {
	return c.UploadPackPieces(ctx, name, [][]byte{data})
}

// UploadPackPieces is UploadPack of the pieces joined (a pack laid out in
// pieces by pack.Writer.FinishPieces), without joining them: each byte is
// copied once, into the message that carries it.
func (c *Client) UploadPackPieces(ctx context.Context, name string, pieces [][]byte) error {
	if err := checkPackName(name); err != nil {
		return err
	}
	size := piecesLen(pieces)
	if size == 0 {
		return fmt.Errorf("upload pack %s: %w: empty pack", name, ErrInvalid)
	}
	return c.do(ctx, "upload pack "+name, c.transferTimeout(size), func(ctx context.Context, _ int) error {
		return c.uploadOnce(ctx, name, pieces, size)
	})
}

func (c *Client) uploadOnce(ctx context.Context, name string, pieces [][]byte, size int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// pb.Codec: each data message is copied once, into a recycled buffer.
	stream, err := c.api.UploadPack(ctx, grpc.ForceCodecV2(pb.Codec{}))
	if err != nil {
		return err
	}
	hdr := &pb.UploadPackRequest{Part: &pb.UploadPackRequest_Header{Header: &pb.UploadPackHeader{Name: name, Size: uint64(size)}}}
	err = stream.Send(hdr)
	// Data messages of MaxUploadChunk bytes, whatever the pieces' sizes:
	// pb.UploadData (an UploadPackRequest's data on the wire) joins them
	// as pb.Codec marshals it, the one copy a message takes anyway.
	msg := &pb.UploadData{Pieces: make([][]byte, 0, 16)}
	n := 0
	send := func() {
		err = stream.SendMsg(msg)
		msg.Pieces, n = msg.Pieces[:0], 0
	}
	for _, p := range pieces {
		for len(p) > 0 && err == nil {
			take := min(len(p), pb.MaxUploadChunk-n)
			msg.Pieces = append(msg.Pieces, p[:take])
			n += take
			p = p[take:]
			if n == pb.MaxUploadChunk {
				send()
			}
		}
	}
	if err == nil && n > 0 {
		send()
	}
	// io.EOF from Send means the server has answered already (an error, or
	// the pack was there): CloseAndRecv returns that answer.
	if err != nil && err != io.EOF {
		return err
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetSize() != uint64(size) {
		return fmt.Errorf("%w: server stored %d bytes of %d", ErrBadResponse, resp.GetSize(), size)
	}
	return nil
}

// DownloadRange reads length bytes of a pack from off; length < 0 reads to
// the end. Long ranges are fetched in several calls. The slice is the
// caller's.
func (c *Client) DownloadRange(ctx context.Context, pack string, off, length int64) ([]byte, error) {
	if err := checkPackName(pack); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("download %s: %w: negative offset", pack, ErrInvalid)
	}
	if length < 0 {
		info, err := c.StatPack(ctx, pack)
		if err != nil {
			return nil, err
		}
		if off > info.Size {
			return nil, fmt.Errorf("download %s: %w: offset %d past %d bytes", pack, ErrOutOfRange, off, info.Size)
		}
		length = info.Size - off
	}
	var out []byte
	if length > pb.MaxRange {
		out = make([]byte, 0, length)
	}
	for int64(len(out)) < length {
		n := min(length-int64(len(out)), pb.MaxRange)
		at := off + int64(len(out))
		err := c.do(ctx, "download "+pack, c.transferTimeout(n), func(ctx context.Context, _ int) error {
			// pb.Codec: the data arrives in a buffer of its own, no copies.
			resp, err := c.api.DownloadRange(ctx, &pb.DownloadRangeRequest{Pack: pack, Offset: uint64(at), Length: uint32(n)}, grpc.ForceCodecV2(pb.Codec{}))
			if err != nil {
				return err
			}
			if int64(len(resp.GetData())) != n {
				return fmt.Errorf("%w: %d bytes for a range of %d", ErrBadResponse, len(resp.GetData()), n)
			}
			if n == length {
				out = resp.GetData() // one call: no copy
			} else {
				out = append(out, resp.GetData()...)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// StatPack returns a pack's size.
func (c *Client) StatPack(ctx context.Context, name string) (PackInfo, error) {
	if err := checkPackName(name); err != nil {
		return PackInfo{}, err
	}
	var out PackInfo
	err := c.do(ctx, "stat pack "+name, c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.StatPack(ctx, &pb.StatPackRequest{Name: name})
		if err != nil {
			return err
		}
		if resp.GetName() != name || resp.GetSize() > 1<<62 {
			return fmt.Errorf("%w: stat of %s", ErrBadResponse, name)
		}
		out = PackInfo{Name: name, Size: int64(resp.GetSize())}
		return nil
	})
	return out, err
}

// ListPacks returns up to limit packs named after after, in name order
// (the server caps a page at 1000).
func (c *Client) ListPacks(ctx context.Context, after string, limit int) ([]PackInfo, error) {
	var out []PackInfo
	err := c.do(ctx, "list packs", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.ListPacks(ctx, &pb.ListPacksRequest{After: after, Limit: clampLimit(limit)})
		if err != nil {
			return err
		}
		out, err = PacksFromPB(resp.GetPacks(), after)
		return err
	})
	return out, err
}

// PacksFromPB checks a page of packs: names valid and increasing.
func PacksFromPB(ps []*pb.PackInfo, after string) ([]PackInfo, error) {
	out := make([]PackInfo, len(ps))
	prev := after
	for i, p := range ps {
		if !validHex(p.GetName(), pb.PackNameLen) || p.GetName() <= prev || p.GetSize() > 1<<62 {
			return nil, fmt.Errorf("%w: pack listing out of order or malformed", ErrBadResponse)
		}
		prev = p.GetName()
		out[i] = PackInfo{Name: p.GetName(), Size: int64(p.GetSize())}
	}
	return out, nil
}

// DeletePack deletes a pack the index does not refer to (ErrPackInUse
// otherwise).
func (c *Client) DeletePack(ctx context.Context, name string) error {
	if err := checkPackName(name); err != nil {
		return err
	}
	return c.do(ctx, "delete pack "+name, c.opts.callTimeout, func(ctx context.Context, _ int) error {
		_, err := c.api.DeletePack(ctx, &pb.DeletePackRequest{Name: name})
		return err
	})
}

// NewPackStore returns the server's pack calls as an object store, so the
// store layer reads and writes packs without storage credentials. Object
// names must be pack names (64 lowercase hex digits). Unlike a plain
// object store, Put of an existing name does not replace it: packs are
// immutable, and a second Put of the same size is taken as a retry.
func NewPackStore(c *Client) objstore.ObjectStore { return &packStore{c: c} }

type packStore struct{ c *Client }

// maxPutSize bounds what Put buffers; servers refuse packs far smaller.
const maxPutSize = 1 << 30

// storeErr adds the objstore sentinels to client errors, so code written
// against any ObjectStore keeps working.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: %w", objstore.ErrNotFound, err)
	case errors.Is(err, ErrOutOfRange):
		return fmt.Errorf("%w: %w", objstore.ErrOutOfRange, err)
	}
	return err
}

func (s *packStore) checkName(name string) error {
	if !validHex(name, pb.PackNameLen) {
		return fmt.Errorf("%w: %q is not a pack name", objstore.ErrInvalidName, name)
	}
	return nil
}

func (s *packStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := s.checkName(name); err != nil {
		return err
	}
	if size < 0 || size > maxPutSize {
		return fmt.Errorf("put %s: %w: size %d", name, ErrInvalid, size)
	}
	if br, ok := r.(*objstore.BytesReader); ok {
		if b := br.Unread(); b != nil && int64(len(b)) == size {
			return s.c.UploadPack(ctx, name, b) // the caller's slice: no copy
		}
	}
	if pr, ok := r.(*objstore.PiecesReader); ok {
		if p := pr.Unread(); p != nil && piecesLen(p) == size {
			return s.c.UploadPackPieces(ctx, name, p) // the caller's pieces: not joined
		}
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("put %s: %w: reader ended early", name, objstore.ErrSizeMismatch)
		}
		return fmt.Errorf("put %s: %w", name, err)
	}
	var extra [1]byte
	if n, _ := io.ReadFull(r, extra[:]); n != 0 {
		return fmt.Errorf("put %s: %w: reader has more than %d bytes", name, objstore.ErrSizeMismatch, size)
	}
	return s.c.UploadPack(ctx, name, data)
}

func piecesLen(pieces [][]byte) int64 {
	var n int64
	for _, p := range pieces {
		n += int64(len(p))
	}
	return n
}

func (s *packStore) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := s.checkName(name); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: %w: negative offset", name, objstore.ErrOutOfRange)
	}
	data, err := s.c.DownloadRange(ctx, name, off, length)
	if err != nil {
		return nil, storeErr(err)
	}
	// A BytesReader hands the slice over: readers of whole ranges (the
	// chunk fetch) take it without copying.
	return objstore.NewBytesReader(data), nil
}

func (s *packStore) Stat(ctx context.Context, name string) (objstore.ObjectInfo, error) {
	if err := s.checkName(name); err != nil {
		return objstore.ObjectInfo{}, err
	}
	p, err := s.c.StatPack(ctx, name)
	if err != nil {
		return objstore.ObjectInfo{}, storeErr(err)
	}
	return objstore.ObjectInfo{Name: p.Name, Size: p.Size}, nil
}

func (s *packStore) List(ctx context.Context, fn func(objstore.ObjectInfo) error) error {
	after := ""
	for {
		page, err := s.c.ListPacks(ctx, after, pb.MaxPageSize)
		if err != nil {
			return err
		}
		for _, p := range page {
			if err := fn(objstore.ObjectInfo{Name: p.Name, Size: p.Size}); err != nil {
				return err
			}
		}
		if len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].Name
	}
}

func (s *packStore) Delete(ctx context.Context, name string) error {
	if err := s.checkName(name); err != nil {
		return err
	}
	return storeErr(s.c.DeletePack(ctx, name))
}
