package remote

import (
	"testing"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"google.golang.org/protobuf/proto"
)

// FuzzResponses feeds arbitrary bytes, as a hostile server would send, to
// the client's decoding and checking of every response with content (the
// first byte picks the message). Seeds: testdata/fuzz/FuzzResponses.
func FuzzResponses(f *testing.F) {
	kp := &crypto.BoxKeyPair{Public: [32]byte{1}, Private: [32]byte{2}}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		body := data[1:]
		switch data[0] % 6 {
		case 0:
			var m pb.LoginResponse
			if proto.Unmarshal(body, &m) != nil {
				return
			}
			s, err := SessionFromResponse(&m, kp)
			if err == nil && (len(s.Token) != pb.TokenSize || !validHex(s.UserID, 32) || len(s.MasterKeys) == 0) {
				t.Fatalf("accepted session %+v", s)
			}
		case 1:
			var m pb.Head
			if proto.Unmarshal(body, &m) != nil {
				return
			}
			h, err := HeadFromPB(&m)
			if err == nil && (h.Seq == 0) != h.Version.IsZero() {
				t.Fatalf("accepted head %+v", h)
			}
		case 2:
			var m pb.ListVersionsResponse
			if proto.Unmarshal(body, &m) != nil {
				return
			}
			vs, err := VersionsFromPB(m.GetVersions(), 0)
			if err != nil {
				return
			}
			for i, v := range vs {
				if v.Version.IsZero() || (i > 0 && v.Seq <= vs[i-1].Seq) {
					t.Fatalf("accepted versions %+v", vs)
				}
			}
		case 3:
			var m pb.IndexSinceResponse
			if proto.Unmarshal(body, &m) != nil {
				return
			}
			es, err := IndexFromPB(m.GetEntries())
			if err != nil {
				return
			}
			for _, e := range es {
				if !validHex(e.Pack, pb.PackNameLen) || e.Length == 0 {
					t.Fatalf("accepted entry %+v", e)
				}
			}
		case 4:
			var m pb.ListPacksResponse
			if proto.Unmarshal(body, &m) != nil {
				return
			}
			ps, err := PacksFromPB(m.GetPacks(), "")
			if err != nil {
				return
			}
			for i, p := range ps {
				if !validHex(p.Name, pb.PackNameLen) || p.Size < 0 || (i > 0 && p.Name <= ps[i-1].Name) {
					t.Fatalf("accepted packs %+v", ps)
				}
			}
		case 5:
			var m pb.PreLoginResponse
			if proto.Unmarshal(body, &m) != nil {
				return
			}
			p, err := ParamsFromPB(m.GetParams())
			if err == nil && p.Validate() != nil {
				t.Fatalf("accepted params %+v", p)
			}
		}
	})
}
