// Package tlsbatch wraps gRPC's TLS transport credentials so that one write
// to a TLS connection reaches the socket as one send.
//
// gRPC writes its buffered HTTP/2 frames in one write (up to its write
// buffer size, 256 KiB here), but crypto/tls cuts a write into records of
// at most 16 KiB and sends each with a system call of its own: a pack
// upload made 65,536 sends per GiB, each pushing a small segment through
// TCP and waking the receiver. Here the records of one write are collected
// and sent together (16 records per send at 256 KiB), at the cost of one
// copy of the bytes. The bytes on the wire do not change.
package tlsbatch

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// maxBatch bounds what one batch collects before it is sent; a write
// larger than that goes out in several sends.
const maxBatch = 512 << 10

// New returns c with the writes of its connections batched.
func New(c credentials.TransportCredentials) credentials.TransportCredentials {
	return creds{c}
}

type creds struct {
	credentials.TransportCredentials
}

func (c creds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	s := &socket{Conn: raw}
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, s)
	if err != nil {
		return nil, nil, err
	}
	return &Conn{Conn: conn, s: s}, info, nil
}

func (c creds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	s := &socket{Conn: raw}
	conn, info, err := c.TransportCredentials.ServerHandshake(s)
	if err != nil {
		return nil, nil, err
	}
	return &Conn{Conn: conn, s: s}, info, nil
}

func (c creds) Clone() credentials.TransportCredentials {
	return creds{c.TransportCredentials.Clone()}
}

// Conn is a TLS connection whose writes are sent whole.
type Conn struct {
	net.Conn // the TLS connection
	s        *socket
}

// Write encrypts p and sends its records together.
func (c *Conn) Write(p []byte) (int, error) {
	c.s.begin()
	n, err := c.Conn.Write(p)
	if ferr := c.s.end(); ferr != nil && err == nil {
		// The records are lost: the connection is broken.
		return 0, ferr
	}
	return n, err
}

// socket is the connection under TLS. Between begin and end, writes (the
// TLS records of one write, and any record TLS sends meanwhile from
// another goroutine, such as a key update) collect in a buffer, in order.
type socket struct {
	net.Conn
	mu    sync.Mutex
	depth int     // open batches: Writes of the Conn under way
	buf   *[]byte // the batch, from bufs while one is open
	err   error   // a failed send: nothing more goes out
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, maxBatch); return &b }}

func (s *socket) begin() {
	s.mu.Lock()
	s.depth++
	s.mu.Unlock()
}

// end sends what the batch collected once no Write is under way.
func (s *socket) end() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.depth--
	if s.depth > 0 {
		return s.err
	}
	err := s.flushLocked()
	if s.buf != nil {
		*s.buf = (*s.buf)[:0]
		bufs.Put(s.buf) // an idle connection holds no buffer
		s.buf = nil
	}
	return err
}

func (s *socket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	if s.depth == 0 {
		return s.Conn.Write(p)
	}
	if s.buf == nil {
		s.buf = bufs.Get().(*[]byte)
	}
	if len(*s.buf)+len(p) > maxBatch {
		if err := s.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > maxBatch {
			return s.send(p)
		}
	}
	*s.buf = append(*s.buf, p...)
	return len(p), nil
}

func (s *socket) flushLocked() error {
	if s.err != nil || s.buf == nil || len(*s.buf) == 0 {
		return s.err
	}
	_, err := s.send(*s.buf)
	*s.buf = (*s.buf)[:0]
	return err
}

// send writes p to the socket; a failure sticks, since what TLS believes
// sent is not.
func (s *socket) send(p []byte) (int, error) {
	n, err := s.Conn.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}
