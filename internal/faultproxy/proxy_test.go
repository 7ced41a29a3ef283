package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// How long a read must see nothing to count as "no bytes pass". A cut
// blocks forever, so this bounds the test's duration, not its correctness.
const silence = 300 * time.Millisecond

// Bounds waits that should succeed; generous for a loaded machine.
const patience = 20 * time.Second

// upstream is a real TCP server on 127.0.0.1 that hands each accepted
// connection to the test, so the test can write to the client from the
// server side and read what arrived there.
type upstream struct {
	listener net.Listener
	conns    chan net.Conn
	wg       sync.WaitGroup
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{listener: l, conns: make(chan net.Conn, 16)}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			u.conns <- conn
		}
	}()
	t.Cleanup(func() {
		l.Close()
		u.wg.Wait()
		close(u.conns)
		for conn := range u.conns {
			conn.Close()
		}
	})
	return u
}

// accept returns the next server-side connection.
func (u *upstream) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case conn := <-u.conns:
		t.Cleanup(func() { conn.Close() })
		return conn
	case <-time.After(patience):
		t.Fatalf("upstream accepted no connection")
		return nil
	}
}

func newProxy(t *testing.T, u *upstream) *Proxy {
	t.Helper()
	p, err := New(u.listener.Addr().String())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addr(), patience)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// send writes msg on from and checks that to receives exactly msg.
func send(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	receive(t, to, msg)
}

// receive checks that conn receives exactly msg next.
func receive(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(patience))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatalf("read %q: %v", msg, err)
	}
	if string(buf) != msg {
		t.Fatalf("received %q, want %q", buf, msg)
	}
}

// sendBlocked writes msg (if any) on from and checks that to receives
// nothing while the connection stays open: the read times out rather than
// failing.
func sendBlocked(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if msg != "" {
		if _, err := from.Write([]byte(msg)); err != nil {
			t.Fatalf("write %q during cut: %v (a cut must not close connections)", msg, err)
		}
	}
	to.SetReadDeadline(time.Now().Add(silence))
	buf := make([]byte, 64)
	n, err := to.Read(buf)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("read during cut = %q, %v; want a timeout with no bytes", buf[:n], err)
	}
}

func TestBytesFlowBothWays(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u)
	client := dial(t, p)
	server := u.accept(t)
	send(t, client, server, "request")
	send(t, server, client, "response")
}

func TestCutStopsBytesAndHealRestores(t *testing.T) {
	ctx := context.Background()
	u := newUpstream(t)
	p := newProxy(t, u)

	client := dial(t, p)
	server := u.accept(t)
	send(t, client, server, "before")
	send(t, server, client, "before")

	if err := p.Cut(ctx); err != nil {
		t.Fatalf("Cut: %v", err)
	}
	if err := p.Cut(ctx); err != nil {
		t.Fatalf("second Cut: %v", err)
	}
	// An existing connection: nothing passes either way, nothing closes.
	sendBlocked(t, client, server, "up-during-cut")
	sendBlocked(t, server, client, "down-during-cut")
	// A new connection: accepted, but nothing passes.
	lateClient := dial(t, p)
	lateServer := u.accept(t)
	sendBlocked(t, lateClient, lateServer, "late-up")
	sendBlocked(t, lateServer, lateClient, "late-down")

	// A close during the cut does not reach the other side either.
	lateClient.Close()
	sendBlocked(t, lateServer, lateServer, "")

	if err := p.Heal(ctx); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	if err := p.Heal(ctx); err != nil {
		t.Fatalf("second Heal: %v", err)
	}
	// Connections that lived through the cut get what waited, in order,
	// and go on working.
	receive(t, server, "up-during-cut")
	receive(t, client, "down-during-cut")
	send(t, client, server, "up-after-heal")
	send(t, server, client, "down-after-heal")
	// The close made during the cut arrives after the bytes sent before it.
	receive(t, lateServer, "late-up")
	lateServer.SetReadDeadline(time.Now().Add(patience))
	if n, err := lateServer.Read(make([]byte, 64)); err != io.EOF {
		t.Fatalf("read after the client's close = %d bytes, %v; want EOF", n, err)
	}

	// A new connection works again.
	healedClient := dial(t, p)
	healedServer := u.accept(t)
	send(t, healedClient, healedServer, "after")
	send(t, healedServer, healedClient, "after")

	// And the proxy can be cut again.
	if err := p.Cut(ctx); err != nil {
		t.Fatalf("Cut after Heal: %v", err)
	}
	sendBlocked(t, healedClient, healedServer, "again")
}

func TestHealWithoutCut(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u)
	if err := p.Heal(context.Background()); err != nil {
		t.Fatalf("Heal of an uncut proxy: %v", err)
	}
	client := dial(t, p)
	server := u.accept(t)
	send(t, client, server, "still-works")
}

func TestCanceledContext(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Cut(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Cut with a canceled context = %v, want context.Canceled", err)
	}
	client := dial(t, p)
	server := u.accept(t)
	send(t, client, server, "not-cut")
}

func TestCloseLeavesNothingRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn
		}
	}()
	p, err := New(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// One connection that lives through Close while cut, one while not.
	open, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	serverOpen := <-accepted
	send(t, open, serverOpen, "x")
	if err := p.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	cut, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	serverCut := <-accepted
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Cut(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Cut after Close = %v, want ErrClosed", err)
	}
	if err := p.Heal(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Heal after Close = %v, want ErrClosed", err)
	}
	// The proxy closed both sides of both connections.
	for _, conn := range []net.Conn{open, cut, serverOpen, serverCut} {
		conn.SetReadDeadline(time.Now().Add(patience))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection %v still open after Close", conn.LocalAddr())
		}
		conn.Close()
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), patience); err == nil {
		t.Errorf("proxy still accepts connections after Close")
	}
	l.Close()
	for range accepted {
	}
}

func TestNewRejectsNonLoopback(t *testing.T) {
	for _, upstream := range []string{"10.0.0.1:2379", "192.168.1.1:6379", "example.com:80", "8.8.8.8:53", "no-port"} {
		if p, err := New(upstream); err == nil {
			p.Close()
			t.Errorf("New(%q) succeeded; want it refused", upstream)
		}
	}
	for _, upstream := range []string{"127.0.0.1:1", "localhost:1", "[::1]:1", "127.0.0.2:1"} {
		p, err := New(upstream)
		if err != nil {
			t.Errorf("New(%q): %v", upstream, err)
			continue
		}
		if p.Upstream() != upstream {
			t.Errorf("Upstream() = %q, want %q", p.Upstream(), upstream)
		}
		p.Close()
	}
}

// A client that resets its connection while the server keeps sending ends
// the proxy's writer to it with bytes still on their way. Close must still
// end every goroutine of that connection, after a cut and heal as without.
func TestCloseAfterPeerResetLeavesNothingRunning(t *testing.T) {
	for _, cutFirst := range []bool{false, true} {
		name := "never cut"
		if cutFirst {
			name = "after cut and heal"
		}
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ctx := context.Background()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			p, err := New(l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if cutFirst {
				if err := p.Cut(ctx); err != nil {
					t.Fatal(err)
				}
				if err := p.Heal(ctx); err != nil {
					t.Fatal(err)
				}
			}
			client, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			server, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			send(t, server, client, "hello")
			// The server streams while the client reads nothing, so the
			// proxy's writer to the client blocks with more bytes behind it.
			streaming := make(chan struct{})
			go func() {
				defer close(streaming)
				chunk := make([]byte, 32<<10)
				server.SetWriteDeadline(time.Now().Add(patience))
				for {
					if _, err := server.Write(chunk); err != nil {
						return
					}
				}
			}()
			time.Sleep(100 * time.Millisecond)
			// A reset, not a graceful close: the blocked write fails.
			client.(*net.TCPConn).SetLinger(0)
			client.Close()
			<-streaming
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}
