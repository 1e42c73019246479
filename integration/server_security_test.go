package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawConn talks to the server through the generated stubs (and raw
// bytes), to send what the remote client never would.
func rawConn(t *testing.T, d serverData) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+d.addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func authCtx(ctx context.Context, token []byte) context.Context {
	return metadata.AppendToOutgoingContext(ctx, pb.AuthHeader, "Bearer "+base64.StdEncoding.EncodeToString(token))
}

// allRPCs lists every method of the service, so a test can prove it tried
// each one.
func allRPCs() []string {
	var out []string
	for _, m := range pb.AnySync_ServiceDesc.Methods {
		out = append(out, m.MethodName)
	}
	for _, s := range pb.AnySync_ServiceDesc.Streams {
		out = append(out, s.StreamName)
	}
	sort.Strings(out)
	return out
}

// User B's token cannot read, list, overwrite, download, delete or commit
// into anything of user A's; every RPC is tried.
func TestServerAccountIsolation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := initServer(t)
	d.start(t)
	a := d.signUp(t, "victim@example.org")
	b := d.signUp(t, "attacker@example.org")
	a1, aPack := commit(t, a.c, remote.Head{}, "victim-secret")
	aData := []byte(strings.Repeat("victim-secret", 64))
	aDevices, err := a.c.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw := pb.NewAnySyncClient(rawConn(t, d))
	bctx := authCtx(ctx, b.session.Token)
	tried := map[string]bool{}
	try := func(rpc string, err error, want ...error) {
		t.Helper()
		tried[rpc] = true
		for _, w := range want {
			if errors.Is(err, w) {
				return
			}
		}
		if len(want) > 0 || err != nil {
			t.Errorf("%s: %v, want one of %v", rpc, err, want)
		}
	}

	// Unauthenticated calls: B's knowledge of A's email gets nothing but
	// the salt (which PreLogin gives anyone, real or fake).
	_, err = b.c.PreLogin(ctx, a.email)
	try("PreLogin", err)
	_, err = d.dial(t).Login(ctx, remote.LoginRequest{Email: a.email, Proof: b.proof})
	try("Login", err, remote.ErrWrongPassword)
	_, err = d.dial(t).Signup(ctx, remote.SignupRequest{Email: a.email, Proof: b.proof, Params: b.params, MasterKeys: b.keys})
	try("Signup", err, remote.ErrAccountExists)

	// Reads see only B's own (empty) account.
	h, err := b.c.Head(ctx)
	try("GetHead", err)
	if h.Seq != 0 {
		t.Errorf("B sees head %+v", h)
	}
	vs, err := b.c.ListVersions(ctx, 0, 0)
	try("ListVersions", err)
	if len(vs) != 0 {
		t.Errorf("B lists versions %+v", vs)
	}
	es, _, err := b.c.IndexSince(ctx, 0, 0)
	try("IndexSince", err)
	if len(es) != 0 {
		t.Errorf("B reads index %+v", es)
	}
	has, err := b.c.HasBlobs(ctx, []crypto.ID{a1.Version})
	try("HasBlobs", err)
	if has[0] {
		t.Error("B learns that A holds a blob")
	}
	used, _, err := b.c.Usage(ctx)
	try("GetUsage", err)
	if used != 0 {
		t.Errorf("B is charged %d bytes", used)
	}
	ds, err := b.c.Devices(ctx)
	try("ListDevices", err)
	if len(ds) != 1 || ds[0].ID == aDevices[0].ID {
		t.Errorf("B lists devices %+v", ds)
	}
	ps, err := b.c.ListPacks(ctx, "", 0)
	try("ListPacks", err)
	if len(ps) != 0 {
		t.Errorf("B lists packs %+v", ps)
	}
	_, err = b.c.StatPack(ctx, aPack)
	try("StatPack", err, remote.ErrNotFound)
	_, err = b.c.DownloadRange(ctx, aPack, 0, 10)
	try("DownloadRange", err, remote.ErrNotFound)

	// Writes: B cannot commit A's data, delete A's pack or device, or
	// change A's password.
	_, err = b.c.Commit(ctx, remote.CommitRequest{Version: a1.Version, Entries: []remote.IndexEntry{{ID: a1.Version, Pack: aPack, Length: 5}}})
	try("CommitVersion", err, remote.ErrBadCommit)
	err = b.c.DeletePack(ctx, aPack)
	try("DeletePack", err, remote.ErrNotFound)
	err = b.c.RevokeDevice(ctx, aDevices[0].ID)
	try("RevokeDevice", err, remote.ErrNotFound)
	p2, _ := crypto.NewScryptParams()
	err = b.c.ChangePassword(ctx, remote.ChangePasswordRequest{OldProof: a.proof, NewProof: randomBytes(t, 32), NewParams: p2, NewMasterKeys: randomBytes(t, 100)})
	try("ChangePassword", err, remote.ErrWrongPassword)

	// Upload under A's pack name lands in B's own namespace.
	evil := []byte("overwritten by the attacker")
	err = b.c.UploadPack(ctx, aPack, evil)
	try("UploadPack", err)
	if got, _ := b.c.DownloadRange(ctx, aPack, 0, -1); !bytes.Equal(got, evil) {
		t.Errorf("B reads %q from its own pack", got)
	}
	if err := b.c.DeletePack(ctx, aPack); err != nil {
		t.Errorf("B deletes its own pack: %v", err)
	}

	// Watch: B's stream carries B's heads only.
	stream, err := raw.Watch(bctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	try("Watch", err)
	if first.GetSeq() != 0 {
		t.Errorf("B watches head %d", first.GetSeq())
	}
	a2, _ := commit(t, a.c, a1, "victim-2")
	b1, _ := commit(t, b.c, remote.Head{}, "attacker-1")
	next, err := stream.Recv()
	if err != nil || next.GetSeq() != b1.Seq || !bytes.Equal(next.GetVersionId(), b1.Version[:]) {
		t.Errorf("B's watch got %v %v, want its own %+v", next, err, b1)
	}

	// B logging out ends only B's token.
	err = b.c.Logout(ctx)
	try("Logout", err)

	// A is untouched by all of it.
	if h, err := a.c.Head(ctx); err != nil || h != a2 {
		t.Errorf("A's head %+v %v", h, err)
	}
	if got, err := a.c.DownloadRange(ctx, aPack, 0, -1); err != nil || !bytes.Equal(got, aData) {
		t.Errorf("A's pack now %q %v", got, err)
	}
	if _, err := d.dial(t).Login(ctx, remote.LoginRequest{Email: a.email, Proof: a.proof}); err != nil {
		t.Errorf("A's login: %v", err)
	}
	if ds, _ := a.c.Devices(ctx); len(ds) != 2 {
		t.Errorf("A has %d devices", len(ds))
	}
	for _, rpc := range allRPCs() {
		if !tried[rpc] {
			t.Errorf("RPC %s was not tried", rpc)
		}
	}
}

// A client that disconnects mid-upload leaves the server running and no
// partial pack behind, in the metadata or in the storage folder.
func TestServerUploadCutOff(t *testing.T) {
	ctx := context.Background()
	d := initServer(t)
	p := d.start(t)
	u := d.signUp(t, "erin@example.org")
	raw := pb.NewAnySyncClient(rawConn(t, d))
	data := randomBytes(t, 3<<20)
	name := packName(data)

	sctx, cancel := context.WithCancel(authCtx(ctx, u.session.Token))
	stream, err := raw.UploadPack(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Header{Header: &pb.UploadPackHeader{Name: name, Size: uint64(len(data))}}}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Data{Data: data[:1<<20]}}); err != nil {
		t.Fatal(err)
	}
	// Wait until the server holds the reservation, then vanish.
	waitFor(t, "upload to start", func() bool { used, _, _ := u.c.Usage(ctx); return used == int64(len(data)) })
	cancel()
	waitFor(t, "the reservation to go", func() bool { used, _, _ := u.c.Usage(ctx); return used == 0 })
	if files := storedFiles(t, filepath.Join(d.dir, "packs")); len(files) != 0 {
		t.Fatalf("storage holds %v after a cut-off upload", files)
	}
	if _, err := u.c.StatPack(ctx, name); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("cut-off pack: %v", err)
	}
	if !p.alive() {
		t.Fatal("server died")
	}

	// Uploads that lie about their size are refused and leave nothing.
	bad := []struct {
		label string
		size  uint64
		parts [][]byte
	}{
		{"short", 1000, [][]byte{data[:500]}},
		{"long", 100, [][]byte{data[:200]}},
		{"long in the second message", 150, [][]byte{data[:100], data[:100]}},
		{"oversized message", 3 << 20, [][]byte{data[:2<<20]}},
		{"empty message", 10, [][]byte{{}, data[:10]}},
	}
	for _, tc := range bad {
		st, err := raw.UploadPack(authCtx(ctx, u.session.Token))
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Header{Header: &pb.UploadPackHeader{Name: name, Size: tc.size}}})
		for _, part := range tc.parts {
			_ = st.Send(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Data{Data: part}})
		}
		if _, err := st.CloseAndRecv(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s upload: %v", tc.label, err)
		}
	}
	// Two headers, data before the header.
	for _, first := range []*pb.UploadPackRequest{
		{Part: &pb.UploadPackRequest_Data{Data: data[:10]}},
		{Part: &pb.UploadPackRequest_Header{Header: &pb.UploadPackHeader{Name: name, Size: 10}}},
	} {
		st, _ := raw.UploadPack(authCtx(ctx, u.session.Token))
		_ = st.Send(first)
		_ = st.Send(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Header{Header: &pb.UploadPackHeader{Name: name, Size: 10}}})
		if _, err := st.CloseAndRecv(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("malformed upload: %v", err)
		}
	}
	if used, _, _ := u.c.Usage(ctx); used != 0 {
		t.Fatalf("refused uploads left %d bytes charged", used)
	}
	if files := storedFiles(t, filepath.Join(d.dir, "packs")); len(files) != 0 {
		t.Fatalf("storage holds %v after refused uploads", files)
	}
	// The name is free again for an honest upload.
	if err := u.c.UploadPack(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	if got, err := u.c.DownloadRange(ctx, name, 1<<20, 1<<20); err != nil || !bytes.Equal(got, data[1<<20:2<<20]) {
		t.Fatalf("download after retry: %v", err)
	}
	// And it is in the folder the checks above looked at, under the
	// account's namespace.
	files := storedFiles(t, filepath.Join(d.dir, "packs"))
	if len(files) != 1 || !strings.HasSuffix(files[0], u.session.UserID+name) {
		t.Fatalf("storage holds %v, want one object ending in %s%s", files, u.session.UserID, name)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawCodec sends bytes as they are, to feed the server malformed messages.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// Malformed and oversized messages get an error, never a crash.
func TestServerMalformedMessages(t *testing.T) {
	ctx := context.Background()
	d := initServer(t)
	p := d.start(t)
	u := d.signUp(t, "frank@example.org")
	cc := rawConn(t, d)
	actx := authCtx(ctx, u.session.Token)
	garbage := [][]byte{
		{0xff},                         // truncated varint tag
		{0x0a, 0xff, 0xff, 0xff, 0x0f}, // length far past the end
		{0x0a, 0x05, 'a'},              // short bytes field
		{0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, // 11-byte varint
		{0x0b},                         // start group
		{0x12, 0x03, 0xff, 0xfe, 0xfd}, // invalid UTF-8 in a string field
		randomBytes(t, 300),
		randomBytes(t, 4096),
	}
	for _, m := range pb.AnySync_ServiceDesc.Methods {
		method := "/" + pb.AnySync_ServiceDesc.ServiceName + "/" + m.MethodName
		for i, g := range garbage {
			in, out := g, []byte(nil)
			calls := []context.Context{ctx, actx}
			if m.MethodName == "Logout" {
				calls = calls[:1] // an empty message is a valid logout
			}
			for _, c := range calls {
				err := cc.Invoke(c, method, &in, &out, grpc.ForceCodec(rawCodec{}))
				if status.Code(err) == codes.Unavailable || status.Code(err) == codes.Unknown {
					t.Fatalf("%s with garbage %d: %v", m.MethodName, i, err)
				}
			}
		}
	}
	// Streams get garbage frames too.
	for _, s := range pb.AnySync_ServiceDesc.Streams {
		method := "/" + pb.AnySync_ServiceDesc.ServiceName + "/" + s.StreamName
		for _, g := range garbage {
			st, err := cc.NewStream(actx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method, grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			in := g
			_ = st.SendMsg(&in)
			_ = st.CloseSend()
			var out []byte
			if err := st.RecvMsg(&out); err == nil && s.StreamName == "UploadPack" {
				t.Errorf("%s accepted garbage", s.StreamName)
			}
		}
	}
	// Oversized: past the message limit.
	huge := make([]byte, pb.MaxMessage+1024)
	var out []byte
	err := cc.Invoke(actx, "/"+pb.AnySync_ServiceDesc.ServiceName+"/CommitVersion", &huge, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized message: %v", err)
	}
	// Within the message limit but over the field bounds.
	raw := pb.NewAnySyncClient(cc)
	ids := make([][]byte, pb.MaxHasBlobs+1)
	for i := range ids {
		ids[i] = make([]byte, 32)
	}
	if _, err := raw.HasBlobs(actx, &pb.HasBlobsRequest{BlobIds: ids}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("too many blob IDs: %v", err)
	}
	entries := make([]*pb.IndexEntry, pb.MaxCommitEntries+1)
	v := blobID("v")
	for i := range entries {
		entries[i] = &pb.IndexEntry{BlobId: v[:], Pack: packName(nil), Length: 1}
	}
	if _, err := raw.CommitVersion(actx, &pb.CommitVersionRequest{VersionId: v[:], Entries: entries}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("too many index entries: %v", err)
	}
	for _, req := range []*pb.CommitVersionRequest{
		{VersionId: v[:31]},
		{VersionId: make([]byte, 32)},
		{VersionId: v[:], ParentId: v[:]},
		{VersionId: v[:], Entries: []*pb.IndexEntry{{BlobId: v[:], Pack: strings.ToUpper(packName(nil)), Length: 1}}},
		{VersionId: v[:], Entries: []*pb.IndexEntry{{BlobId: v[:], Pack: packName(nil), Offset: 1 << 31, Length: 1 << 31}}},
		{VersionId: v[:], Entries: []*pb.IndexEntry{{BlobId: v[:], Pack: "../../etc/passwd"}}},
	} {
		if _, err := raw.CommitVersion(actx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("commit %v: %v", req, err)
		}
	}
	for _, req := range []*pb.DownloadRangeRequest{
		{Pack: packName(nil), Length: pb.MaxRange + 1},
		{Pack: packName(nil), Length: 0},
		{Pack: "", Length: 1},
		{Pack: packName(nil), Offset: 1 << 63, Length: 1},
	} {
		if _, err := raw.DownloadRange(actx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("download %v: %v", req, err)
		}
	}
	box, _ := crypto.NewBoxKeyPair()
	for _, email := range []string{"", "no-at-sign", "a@b@c", "@x", "x@", "sp ace@x.y", strings.Repeat("a", 300) + "@x.y", "ctl\x01@x.y"} {
		if _, err := raw.Login(ctx, &pb.LoginRequest{Email: email, Proof: make([]byte, 32), DeviceBoxPublicKey: box.Public[:]}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("login as %q: %v", email, err)
		}
	}
	for _, params := range []*pb.ScryptParams{
		nil,
		{N: 1 << 14, R: 8, P: 1, Salt: make([]byte, 15)},
		{N: 1 << 30, R: 8, P: 1, Salt: make([]byte, 16)},
		{N: 1000, R: 8, P: 1, Salt: make([]byte, 16)},
		{N: 1 << 14, R: 0, P: 1, Salt: make([]byte, 16)},
		{N: 1 << 14, R: 8, P: 1 << 31, Salt: make([]byte, 16)},
	} {
		_, err := raw.Signup(ctx, &pb.SignupRequest{Email: "new@example.org", Proof: make([]byte, 32), Params: params,
			MasterKeys: []byte{1}, AccountBoxPublicKey: box.Public[:], DeviceBoxPublicKey: box.Public[:]})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("signup with params %v: %v", params, err)
		}
	}
	_, err = raw.Signup(ctx, &pb.SignupRequest{Email: "new@example.org", Proof: make([]byte, 32),
		Params: &pb.ScryptParams{N: 1 << 14, R: 8, P: 1, Salt: make([]byte, 16)}, MasterKeys: make([]byte, pb.MaxMasterKeys+1),
		AccountBoxPublicKey: box.Public[:], DeviceBoxPublicKey: box.Public[:]})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("oversized master.keys: %v", err)
	}

	// Still alive and serving.
	if !p.alive() {
		t.Fatal("server died")
	}
	if _, err := u.c.Head(ctx); err != nil {
		t.Fatalf("server after garbage: %v", err)
	}
	if log := p.log.String(); strings.Contains(log, "panic") {
		t.Fatalf("server log mentions a panic:\n%s", log)
	}
}
