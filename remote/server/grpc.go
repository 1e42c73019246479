package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/internal/tlsbatch"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
)

// NewGRPCServer returns a gRPC server for svc over TLS only, with message
// sizes bounded and keepalives that find dead clients.
func NewGRPCServer(svc *Service, tlsCfg *tls.Config) *grpc.Server {
	g := grpc.NewServer(
		// One send per write of gRPC's buffer, not per 16 KiB TLS record.
		grpc.Creds(tlsbatch.New(credentials.NewTLS(tlsCfg))),
		// The proto codec, but range downloads go out without a copy.
		grpc.ForceServerCodecV2(pb.Codec{}),
		experimental.BufferPool(pb.BufferPool()),
		// Fewer, larger socket writes: a range download is 64 frames of
		// 16 KiB; the write buffer only lives while a write is pending.
		grpc.WriteBufferSize(256<<10),
		grpc.MaxRecvMsgSize(pb.MaxMessage),
		grpc.MaxSendMsgSize(pb.MaxMessage),
		grpc.MaxConcurrentStreams(256),
		grpc.ConnectionTimeout(20*time.Second),
		grpc.ChainUnaryInterceptor(svc.UnaryInterceptor),
		grpc.ChainStreamInterceptor(svc.StreamInterceptor),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	pb.RegisterAnySyncServer(g, svc)
	return g
}

// Serve serves on lis until ctx is done, then drains: Watch streams end at
// once, other calls get up to drain to finish, and whatever is still
// running after that is cut off.
func Serve(ctx context.Context, svc *Service, g *grpc.Server, lis net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	svc.BeginShutdown()
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		g.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
