package remote_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/remote/server"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// flakyServer fails calls on a script, to test the client's retry policy.
type flakyServer struct {
	pb.UnimplementedAnySyncServer
	mu       sync.Mutex
	calls    map[string]int
	failures map[string][]error // per method, the errors of the first calls
	head     *pb.Head
	uploaded []byte
}

func (f *flakyServer) next(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	if errs := f.failures[method]; len(errs) > 0 {
		f.failures[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *flakyServer) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *flakyServer) GetHead(context.Context, *pb.GetHeadRequest) (*pb.Head, error) {
	if err := f.next("GetHead"); err != nil {
		return nil, err
	}
	return f.head, nil
}

func (f *flakyServer) Login(context.Context, *pb.LoginRequest) (*pb.LoginResponse, error) {
	return nil, f.next("Login")
}

func (f *flakyServer) GetUsage(context.Context, *pb.GetUsageRequest) (*pb.GetUsageResponse, error) {
	if err := f.next("GetUsage"); err != nil {
		return nil, err
	}
	return &pb.GetUsageResponse{UsedBytes: 1}, nil
}

// CommitVersion "commits" on its first call but answers Unavailable, as
// when a connection drops after the server's transaction.
func (f *flakyServer) CommitVersion(_ context.Context, req *pb.CommitVersionRequest) (*pb.Head, error) {
	err := f.next("CommitVersion")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls["CommitVersion"] == 1 {
		f.head = &pb.Head{Seq: req.GetExpectedSeq() + 1, VersionId: req.GetVersionId()}
		return nil, err
	}
	st := status.New(codes.FailedPrecondition, "head moved")
	st, _ = st.WithDetails(&errdetails.ErrorInfo{Reason: pb.ReasonHeadMoved, Domain: pb.ErrorDomain})
	return nil, st.Err()
}

func (f *flakyServer) UploadPack(stream grpc.ClientStreamingServer[pb.UploadPackRequest, pb.UploadPackResponse]) error {
	failure := f.next("UploadPack")
	var got []byte
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		got = append(got, m.GetData()...)
		if failure != nil && len(got) >= 1<<20 {
			return failure // cut off after the first chunk
		}
	}
	f.mu.Lock()
	f.uploaded = got
	f.mu.Unlock()
	return stream.SendAndClose(&pb.UploadPackResponse{Size: uint64(len(got))})
}

func startFlaky(t *testing.T, f *flakyServer) *remote.Client {
	t.Helper()
	certPEM, keyPEM, err := server.GenerateCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, fp, err := server.TLSConfig(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	pb.RegisterAnySyncServer(g, f)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	c, err := remote.Dial(ctx, lis.Addr().String(), fp, remote.WithRetry(4, time.Millisecond, 4*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.WithToken(make([]byte, 32))
}

func TestRetryPolicy(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "try later")
	busy := status.Error(codes.ResourceExhausted, "transport busy")
	quotaSt, _ := status.New(codes.ResourceExhausted, "quota").WithDetails(&errdetails.ErrorInfo{Reason: pb.ReasonQuota, Domain: pb.ErrorDomain})
	f := &flakyServer{
		calls: map[string]int{},
		failures: map[string][]error{
			"GetHead":       {unavailable, status.Error(codes.DeadlineExceeded, "slow")},
			"Login":         {status.Error(codes.Unauthenticated, "no"), unavailable},
			"GetUsage":      {busy, quotaSt.Err(), nil},
			"CommitVersion": {unavailable},
			"UploadPack":    {unavailable},
		},
		head: &pb.Head{},
	}
	c := startFlaky(t, f)

	// Transient failures are retried.
	if _, err := c.Head(ctx); err != nil || f.count("GetHead") != 3 {
		t.Fatalf("head: %v after %d calls", err, f.count("GetHead"))
	}
	// Authentication failures are not.
	if _, err := c.Login(ctx, remote.LoginRequest{Email: "a@b.c", Proof: make([]byte, 32)}); !errors.Is(err, remote.ErrUnauthenticated) || f.count("Login") != 1 {
		t.Fatalf("login: %v after %d calls", err, f.count("Login"))
	}
	// Congestion is retried, a quota answer is not.
	if _, _, err := c.Usage(ctx); !errors.Is(err, remote.ErrQuota) || f.count("GetUsage") != 2 {
		t.Fatalf("usage: %v after %d calls", err, f.count("GetUsage"))
	}
	// A commit whose answer was lost: the retry sees "head moved", finds
	// its own version at the head, and succeeds.
	v := crypto.ID{1}
	h, err := c.Commit(ctx, remote.CommitRequest{Version: v})
	if err != nil || h.Version != v || h.Seq != 1 || f.count("CommitVersion") != 2 {
		t.Fatalf("commit: %+v %v after %d calls", h, err, f.count("CommitVersion"))
	}
	// A real head-moved is not retried and not masked.
	if _, err := c.Commit(ctx, remote.CommitRequest{ExpectedSeq: 1, Version: crypto.ID{2}, Parent: v}); !errors.Is(err, remote.ErrHeadMoved) || f.count("CommitVersion") != 3 {
		t.Fatalf("stale commit: %v after %d calls", err, f.count("CommitVersion"))
	}
	// An upload cut off half way is retried whole.
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i)
	}
	if err := c.UploadPack(ctx, packName(data), data); err != nil || f.count("UploadPack") != 2 {
		t.Fatalf("upload: %v after %d calls", err, f.count("UploadPack"))
	}
	f.mu.Lock()
	whole := string(f.uploaded) == string(data)
	f.mu.Unlock()
	if !whole {
		t.Fatal("the retried upload did not carry the whole pack")
	}
	// Retries give up after the configured attempts with ErrUnavailable.
	f.mu.Lock()
	f.failures["GetHead"] = []error{unavailable, unavailable, unavailable, unavailable, unavailable}
	f.mu.Unlock()
	before := f.count("GetHead")
	if _, err := c.Head(ctx); !errors.Is(err, remote.ErrUnavailable) || f.count("GetHead")-before != 4 {
		t.Fatalf("exhausted retries: %v after %d calls", err, f.count("GetHead")-before)
	}
	// A cancelled context stops retrying at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Head(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
