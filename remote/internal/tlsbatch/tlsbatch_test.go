package tlsbatch

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// sends counts the writes that reach a connection.
type sends struct {
	net.Conn
	mu    sync.Mutex
	sizes []int
	fail  error
}

func (s *sends) Write(p []byte) (int, error) {
	s.mu.Lock()
	fail := s.fail
	if fail == nil {
		s.sizes = append(s.sizes, len(p))
	}
	s.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	return s.Conn.Write(p)
}

func (s *sends) reset() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sizes
	s.sizes = nil
	return out
}

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pair returns the two ends of a TLS connection over loopback TCP, both
// batched, and the client's socket (to count its sends).
func pair(t *testing.T) (client, server net.Conn, clientSends *sends) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	cert := testCert(t)
	serverCreds := New(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}))
	clientCreds := New(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}))
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := lis.Accept()
		if err != nil {
			done <- result{nil, err}
			return
		}
		conn, _, err := serverCreds.ServerHandshake(raw)
		done <- result{conn, err}
	}()
	raw, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	clientSends = &sends{Conn: raw}
	client, _, err = clientCreds.ClientHandshake(context.Background(), "localhost", clientSends)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.conn.Close() })
	return client, r.conn, clientSends
}

func TestWriteIsOneSend(t *testing.T) {
	client, server, s := pair(t)
	s.reset() // the handshake
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(data))
		_, err := io.ReadFull(server, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	if n, err := client.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	// 16 records of TLS, one send.
	if sizes := s.reset(); len(sizes) != 1 || sizes[0] < len(data) {
		t.Fatalf("sends %v for one write of %d bytes", sizes, len(data))
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatal("the other end read other bytes")
	}
}

// A write larger than a batch goes out in sends of at most maxBatch, in
// order; small writes each go out at once.
func TestLargeAndSmallWrites(t *testing.T) {
	client, server, s := pair(t)
	s.reset()
	data := make([]byte, 3*maxBatch+12345)
	_, _ = rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(data)+3)
		_, err := io.ReadFull(server, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	if _, err := client.Write(data); err != nil {
		t.Fatal(err)
	}
	sizes := s.reset()
	if len(sizes) < 4 || len(sizes) > 5 {
		t.Fatalf("sends %v for a write of %d bytes", sizes, len(data))
	}
	for _, n := range sizes {
		if n > maxBatch {
			t.Fatalf("a send of %d bytes, more than a batch", n)
		}
	}
	for _, b := range []string{"a", "b", "c"} {
		if _, err := client.Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
		if sizes := s.reset(); len(sizes) != 1 {
			t.Fatalf("a small write was %d sends", len(sizes))
		}
	}
	b := <-got
	if !bytes.Equal(b[:len(data)], data) || string(b[len(data):]) != "abc" {
		t.Fatal("the other end read other bytes, or out of order")
	}
}

// A failed send fails the write, and every later one.
func TestSendFailureSticks(t *testing.T) {
	client, _, s := pair(t)
	s.reset()
	boom := errors.New("connection reset")
	s.mu.Lock()
	s.fail = boom
	s.mu.Unlock()
	if n, err := client.Write(make([]byte, 100<<10)); !errors.Is(err, boom) || n != 0 {
		t.Fatalf("Write = %d, %v; want 0 and the send's error", n, err)
	}
	s.mu.Lock()
	s.fail = nil
	s.mu.Unlock()
	if _, err := client.Write([]byte("x")); err == nil {
		t.Fatal("a write after a failed send succeeded")
	}
	if sizes := s.reset(); len(sizes) != 0 {
		t.Fatalf("sends %v after a failed send", sizes)
	}
}

// Concurrent writers (TLS serialises them) all arrive whole.
func TestConcurrentWrites(t *testing.T) {
	client, server, _ := pair(t)
	const writers, size = 8, 40 << 10
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, writers*size)
		_, err := io.ReadFull(server, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if _, err := client.Write(bytes.Repeat([]byte{byte(i + 1)}, size)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	b := <-got
	if b == nil {
		t.Fatal("read failed")
	}
	// Each write's bytes are contiguous.
	for off := 0; off < len(b); off += size {
		if !bytes.Equal(b[off:off+size], bytes.Repeat(b[off:off+1], size)) {
			t.Fatalf("writes interleaved at %d", off)
		}
	}
}
