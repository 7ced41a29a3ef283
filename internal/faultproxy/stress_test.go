package faultproxy

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer serves an echo on 127.0.0.1 until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(conn, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, conn := range conns {
			conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestCutHealUnderTraffic toggles the partition while clients connect and
// talk, so the race detector sees Toxiproxy's link setup and toxic changes
// interleave. Afterwards the healed proxy must carry bytes again.
func TestCutHealUnderTraffic(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Failures are expected while cut; only the end state counts.
				conn, err := net.DialTimeout("tcp", p.Addr(), time.Second)
				if err != nil {
					continue
				}
				conn.SetDeadline(time.Now().Add(50 * time.Millisecond))
				conn.Write([]byte("ping"))
				io.ReadFull(conn, make([]byte, 4))
				conn.Close()
			}
		}()
	}
	for range 20 {
		if err := p.Cut(ctx); err != nil {
			t.Fatalf("Cut: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
		if err := p.Heal(ctx); err != nil {
			t.Fatalf("Heal: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	conn, err := net.DialTimeout("tcp", p.Addr(), patience)
	if err != nil {
		t.Fatalf("dial after the last Heal: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(patience))
	if _, err := conn.Write([]byte("after")); err != nil {
		t.Fatalf("write after the last Heal: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "after" {
		t.Fatalf("echo after the last Heal = %q, %v", buf, err)
	}
}
