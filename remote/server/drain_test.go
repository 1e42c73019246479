package server_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"io"
	"sync"
	"testing"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/remotetest"
	"github.com/anysync/anysync/store/objstore"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// blockingStore holds every Put until released.
type blockingStore struct {
	objstore.ObjectStore
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.ObjectStore.Put(ctx, name, r, size)
}

// Shutting down ends Watch streams at once but lets a call in flight (an
// upload) finish: the drain timeout (5 s in remotetest) would otherwise cut
// the upload off and fail it.
func TestShutdownDrainsInFlightCalls(t *testing.T) {
	ctx := context.Background()
	store := &blockingStore{ObjectStore: objstore.NewMem(), entered: make(chan struct{}), release: make(chan struct{})}
	srv := remotetest.Start(t, func(c *remotetest.Config) { c.Objects = store })
	a := srv.SignUp(t, "")

	cc, err := grpc.NewClient("passthrough:///"+srv.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	actx := metadata.AppendToOutgoingContext(ctx, pb.AuthHeader, "Bearer "+base64.StdEncoding.EncodeToString(a.Session.Token))
	watch, err := pb.NewAnySyncClient(cc).Watch(actx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	data := make([]byte, 200<<10)
	sum := sha256.Sum256(data)
	name := hex.EncodeToString(sum[:])
	uploaded := make(chan error, 1)
	go func() { uploaded <- a.Client.UploadPack(ctx, name, data) }()
	<-store.entered

	stopped := make(chan struct{})
	go func() {
		srv.Stop()
		close(stopped)
	}()
	// The watch ends with "shutting down" while the upload still waits.
	_, err = watch.Recv()
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || len(st.Details()) == 0 || st.Details()[0].(*errdetails.ErrorInfo).GetReason() != pb.ReasonShuttingDown {
		t.Fatalf("watch during shutdown: %v", err)
	}
	close(store.release)
	if err := <-uploaded; err != nil {
		t.Fatalf("in-flight upload during shutdown: %v", err)
	}
	<-stopped
	if _, err := store.ObjectStore.Stat(ctx, a.Session.UserID+name); err != nil {
		t.Fatalf("drained upload not stored: %v", err)
	}
}
