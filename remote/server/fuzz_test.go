package server

import (
	"bytes"
	"encoding/base64"
	"net"
	"testing"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"google.golang.org/protobuf/proto"
)

// requestKinds are the request messages FuzzRequests decodes, selected by
// the first input byte.
var requestKinds = []func() proto.Message{
	func() proto.Message { return &pb.SignupRequest{} },
	func() proto.Message { return &pb.LoginRequest{} },
	func() proto.Message { return &pb.ChangePasswordRequest{} },
	func() proto.Message { return &pb.CommitVersionRequest{} },
	func() proto.Message { return &pb.HasBlobsRequest{} },
	func() proto.Message { return &pb.UploadPackRequest{} },
	func() proto.Message { return &pb.DownloadRangeRequest{} },
	func() proto.Message { return &pb.ListPacksRequest{} },
	func() proto.Message { return &pb.PreLoginRequest{} },
	func() proto.Message { return &pb.RevokeDeviceRequest{} },
	func() proto.Message { return &pb.IndexSinceRequest{} },
	func() proto.Message { return &pb.StatPackRequest{} },
}

// Seed corpora live in testdata/fuzz/<name>/.

// FuzzRequests feeds arbitrary bytes to the server's decoding and
// validation of every request with fields, as a hostile client would, and
// checks that what validation accepts keeps its promises.
func FuzzRequests(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		msg := requestKinds[int(data[0])%len(requestKinds)]()
		if err := proto.Unmarshal(data[1:], msg); err != nil {
			return // the gRPC codec refuses it before any handler runs
		}
		checkValidation(t, msg)
	})
}

func checkValidation(t *testing.T, msg proto.Message) {
	switch m := msg.(type) {
	case *pb.SignupRequest:
		a, err := validateSignup(m)
		if err != nil {
			return
		}
		if e, err := NormalizeEmail(a.email); err != nil || e != a.email {
			t.Fatalf("accepted email %q does not normalise to itself", a.email)
		}
		if len(a.proof) != pb.ProofSize || len(a.params.Salt) != pb.SaltSize || len(a.masterKeys) == 0 ||
			len(a.masterKeys) > pb.MaxMasterKeys || len(a.accountBox) != pb.BoxKeySize || a.params.N < 2 {
			t.Fatalf("accepted signup out of bounds: %+v", a)
		}
	case *pb.LoginRequest:
		a, err := validateLogin(m)
		if err == nil && (len(a.proof) != pb.ProofSize || len(a.deviceName) > pb.MaxDeviceName || len(a.clientVersion) > pb.MaxClientVersion) {
			t.Fatalf("accepted login out of bounds: %+v", a)
		}
	case *pb.ChangePasswordRequest:
		a, err := validateChangePassword(m)
		if err == nil && (len(a.oldProof) != pb.ProofSize || len(a.newProof) != pb.ProofSize || len(a.params.Salt) != pb.SaltSize) {
			t.Fatalf("accepted password change out of bounds: %+v", a)
		}
	case *pb.CommitVersionRequest:
		c, err := validateCommit(m)
		if err != nil {
			return
		}
		if c.Version.IsZero() || (c.ExpectedSeq > 0 && c.Parent.IsZero()) || len(c.Entries) > pb.MaxCommitEntries {
			t.Fatalf("accepted commit out of bounds: %+v", c)
		}
		for _, e := range c.Entries {
			if !ValidPackName(e.Pack) || e.Length == 0 || uint64(e.Offset)+uint64(e.Length) > 1<<32-1 || e.Blob.IsZero() {
				t.Fatalf("accepted entry out of bounds: %+v", e)
			}
		}
	case *pb.HasBlobsRequest:
		ids, err := validateHasBlobs(m)
		if err == nil && (len(ids) != len(m.GetBlobIds()) || len(ids) > pb.MaxHasBlobs) {
			t.Fatalf("accepted %d of %d blob IDs", len(ids), len(m.GetBlobIds()))
		}
	case *pb.UploadPackRequest:
		if err := validateUploadHeader(m.GetHeader(), 64<<20); err == nil {
			h := m.GetHeader()
			if !ValidPackName(h.GetName()) || h.GetSize() == 0 || h.GetSize() > 64<<20 {
				t.Fatalf("accepted upload header %+v", h)
			}
		}
	case *pb.DownloadRangeRequest:
		if err := validateDownload(m); err == nil && (m.GetLength() == 0 || m.GetLength() > pb.MaxRange || !ValidPackName(m.GetPack())) {
			t.Fatalf("accepted download %+v", m)
		}
	case *pb.ListPacksRequest:
		if err := validateListPacks(m); err == nil && m.GetAfter() != "" && !ValidPackName(m.GetAfter()) {
			t.Fatalf("accepted list after %q", m.GetAfter())
		}
		if l := pageLimit(m.GetLimit(), pb.MaxPageSize); l < 1 || l > pb.MaxPageSize {
			t.Fatalf("page limit %d", l)
		}
	case *pb.PreLoginRequest:
		if e, err := NormalizeEmail(m.GetEmail()); err == nil && (len(e) > pb.MaxEmail || e == "") {
			t.Fatalf("accepted email %q", e)
		}
	case *pb.RevokeDeviceRequest:
		if err := validateDeviceID(m.GetDeviceId()); err == nil && !ValidHexID(m.GetDeviceId(), 32) {
			t.Fatalf("accepted device ID %q", m.GetDeviceId())
		}
	case *pb.IndexSinceRequest:
		if l := pageLimit(m.GetLimit(), pb.MaxIndexPage); l < 1 || l > pb.MaxIndexPage {
			t.Fatalf("index page limit %d", l)
		}
	case *pb.StatPackRequest:
		if err := checkPackName(m.GetName()); err == nil && !ValidPackName(m.GetName()) {
			t.Fatalf("accepted pack name %q", m.GetName())
		}
	}
}

// FuzzParseBearer checks the authorization header parser.
func FuzzParseBearer(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		tok, err := ParseBearer(v)
		if err != nil {
			return
		}
		if len(tok) != pb.TokenSize {
			t.Fatalf("token of %d bytes from %q", len(tok), v)
		}
		again, err := ParseBearer("Bearer " + base64.StdEncoding.EncodeToString(tok))
		if err != nil || !bytes.Equal(again, tok) {
			t.Fatalf("round trip of %q: %v", v, err)
		}
	})
}

// FuzzUploadReader drives the upload stream reader with arbitrary message
// sequences: it must deliver exactly the declared bytes or fail with a
// bad-upload error, never more, never a short pack.
func FuzzUploadReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		size := int64(data[0])
		var msgs []*pb.UploadPackRequest
		var want []byte
		valid, sum := true, int64(0)
		for i, n := range data[1:] {
			if n == 255 {
				msgs = append(msgs, &pb.UploadPackRequest{Part: &pb.UploadPackRequest_Header{Header: &pb.UploadPackHeader{}}})
				valid = false
				continue
			}
			chunk := bytes.Repeat([]byte{byte(i)}, int(n))
			msgs = append(msgs, dataMsg(chunk))
			want = append(want, chunk...)
			sum += int64(n)
			if n == 0 {
				valid = false
			}
		}
		ok := valid && sum == size
		for how, read := range uploadReaders {
			got, err := read(&uploadReader{stream: &fakeUpload{msgs: msgs}, remaining: size})
			if ok != (err == nil) {
				t.Fatalf("%s: size %d, chunks %v: err %v", how, size, data[1:], err)
			}
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("%s: delivered other bytes", how)
			}
			if int64(len(got)) > size {
				t.Fatalf("%s: delivered %d bytes of a %d-byte pack", how, len(got), size)
			}
		}
	})
}

// FuzzParseConfig checks config.json decoding.
func FuzzParseConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if _, _, err := net.SplitHostPort(cfg.Listen); err != nil || cfg.DefaultQuota < 0 || cfg.MaxPackSize < 0 {
			t.Fatalf("accepted config %+v", cfg)
		}
	})
}
