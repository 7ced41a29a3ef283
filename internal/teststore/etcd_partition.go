package teststore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// etcdPeerNet carries the peer (Raft) traffic of a cluster started with
// EtcdOptions.PeerProxies: every member advertises a proxy in front of its
// peer listener, so that a member can be cut off from the others while it
// keeps serving its clients, as a member on the minority side of a
// partition does.
//
// A proxy alone cannot cut a member off: etcd sends a member's messages to
// a peer both on connections the member opens (pipeline POSTs to the
// peer's URL) and on connections the peer opens (stream GETs to the
// member's URL, answered with the member's messages), so blocking the
// member's own URL leaves one direction open each way. Every peer request
// names its sender's advertised peer URLs (header X-PeerURLs), so each
// proxy learns who opened a connection from its first request, and holds
// every byte of a connection whose either end is cut off.
type etcdPeerNet struct {
	mu       sync.Mutex
	isolated map[int]bool
	changed  chan struct{} // closed and replaced when isolated changes
	closed   chan struct{}
	urls     []string // advertised peer URL (the proxy's) by member
	lns      []net.Listener
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// newEtcdPeerNet starts one proxy per member, proxy i listening on
// listen[i] and forwarding to upstream[i]. It is closed when the test ends.
func newEtcdPeerNet(t testing.TB, listen, upstream []string) *etcdPeerNet {
	t.Helper()
	n := &etcdPeerNet{
		isolated: map[int]bool{},
		changed:  make(chan struct{}),
		closed:   make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
	}
	for _, addr := range listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			n.close()
			t.Fatalf("teststore: etcd peer proxy on %s: %v", addr, err)
		}
		n.lns = append(n.lns, ln)
		n.urls = append(n.urls, "http://"+addr)
	}
	for i, ln := range n.lns {
		n.wg.Add(1)
		go n.accept(ln, i, upstream[i])
	}
	t.Cleanup(n.close)
	return n
}

// setIsolated cuts member i off from its peers (or lets it back).
func (n *etcdPeerNet) setIsolated(i int, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isolated[i] == cut {
		return
	}
	n.isolated[i] = cut
	close(n.changed)
	n.changed = make(chan struct{})
}

// waitOpen waits until neither from nor to is cut off (from -1: an
// unknown sender, judged by to alone). It returns false once the net is
// closed.
func (n *etcdPeerNet) waitOpen(from, to int) bool {
	for {
		n.mu.Lock()
		blocked := n.isolated[to] || (from >= 0 && n.isolated[from])
		changed := n.changed
		n.mu.Unlock()
		if !blocked {
			return true
		}
		select {
		case <-changed:
		case <-n.closed:
			return false
		}
	}
}

func (n *etcdPeerNet) accept(ln net.Listener, to int, upstream string) {
	defer n.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !n.track(c) {
			return
		}
		n.wg.Add(1)
		go n.serve(c, to, upstream)
	}
}

// track records c so that close can end it; false once closed.
func (n *etcdPeerNet) track(c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.closed:
		_ = c.Close()
		return false
	default:
	}
	n.conns[c] = struct{}{}
	return true
}

func (n *etcdPeerNet) untrack(c net.Conn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
	_ = c.Close()
}

// serve forwards one connection to member to: it reads the first
// request's header to learn the sender, then copies both ways, holding
// bytes while either end is cut off.
func (n *etcdPeerNet) serve(c net.Conn, to int, upstream string) {
	defer n.wg.Done()
	defer n.untrack(c)
	in := bufio.NewReader(c)
	head, from, err := n.readHead(in)
	if err != nil {
		return
	}
	if !n.waitOpen(from, to) {
		return
	}
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	if !n.track(up) {
		return
	}
	defer n.untrack(up)
	if _, err := up.Write(head); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { n.copy(up, in, from, to); done <- struct{}{} }()
	go func() { n.copy(c, up, from, to); done <- struct{}{} }()
	<-done
	// One side ended: end the other (untrack closes both).
	_ = c.Close()
	_ = up.Close()
	<-done
}

// readHead reads the first request's header, returning its bytes and the
// index of the member whose peer URL the X-PeerURLs header names (-1 when
// none: a version probe, which carries no Raft message).
func (n *etcdPeerNet) readHead(in *bufio.Reader) ([]byte, int, error) {
	var head []byte
	from := -1
	for {
		line, err := in.ReadString('\n')
		head = append(head, line...)
		if err != nil {
			return nil, -1, err
		}
		if line == "\r\n" || line == "\n" {
			return head, from, nil
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "X-PeerURLs") {
			continue
		}
		for i, u := range n.urls {
			for _, v := range strings.Split(strings.TrimSpace(value), ",") {
				if v == u {
					from = i
				}
			}
		}
	}
}

// copy copies src to dst, waiting before each write while the link is cut.
func (n *etcdPeerNet) copy(dst io.Writer, src io.Reader, from, to int) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if !n.waitOpen(from, to) {
				return
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops every proxy and connection and waits for their goroutines.
func (n *etcdPeerNet) close() {
	n.mu.Lock()
	select {
	case <-n.closed:
		n.mu.Unlock()
		return
	default:
	}
	close(n.closed)
	for c := range n.conns {
		_ = c.Close()
	}
	n.mu.Unlock()
	for _, ln := range n.lns {
		_ = ln.Close()
	}
	n.wg.Wait()
}

// Isolate cuts member m off from the other members of its cluster, in both
// directions, without closing any connection: bytes wait, as in a network
// partition. m keeps serving its clients, as a member on the minority side
// does: requests that need a quorum hang or fail until [Etcd.Rejoin]. The
// cluster must have been started with EtcdOptions.PeerProxies.
func (m *Etcd) Isolate(ctx context.Context) error {
	if m.peers == nil {
		return fmt.Errorf("teststore: isolate etcd member %s: the cluster was started without EtcdOptions.PeerProxies", m.name)
	}
	m.peers.setIsolated(m.index, true)
	return ctx.Err()
}

// Rejoin ends the partition [Etcd.Isolate] made.
func (m *Etcd) Rejoin(ctx context.Context) error {
	if m.peers == nil {
		return fmt.Errorf("teststore: rejoin etcd member %s: the cluster was started without EtcdOptions.PeerProxies", m.name)
	}
	m.peers.setIsolated(m.index, false)
	return ctx.Err()
}
