package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/electionkit/election/conformance"
)

var _ conformance.Link = (*Proxy)(nil)

// ErrClosed is returned by [Proxy.Cut] and [Proxy.Heal] after [Proxy.Close].
var ErrClosed = errors.New("faultproxy: proxy closed")

// proxyCount makes proxy names unique (Toxiproxy labels its proxies).
var proxyCount atomic.Int64

// Proxy is a TCP proxy on 127.0.0.1 that forwards every accepted connection
// to one upstream address until it is cut. Its methods are safe for
// concurrent use.
type Proxy struct {
	proxy *toxiproxy.Proxy
	gate  *gate

	mu     sync.Mutex // serializes Cut, Heal and Close
	closed bool
}

// New starts a proxy listening on a free port of 127.0.0.1 that forwards to
// upstream ("host:port"). It does not connect to upstream until a client
// connects. It fails if upstream is not a loopback address (127.0.0.0/8,
// ::1 or localhost), because tests send traffic nowhere else, or if it
// cannot listen.
func New(upstream string) (*Proxy, error) {
	if err := checkLoopback(upstream); err != nil {
		return nil, err
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	name := fmt.Sprintf("faultproxy-%d", proxyCount.Add(1))
	proxy := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	g := newGate()
	// The gates go in before the proxy starts, so every link has them and
	// no chunk passes a gate without its state.
	for _, stream := range []string{"upstream", "downstream"} {
		body := fmt.Sprintf(`{"name":"gate_%s","type":%q,"stream":%q,"toxicity":1,"attributes":{}}`, stream, gateType, stream)
		wrapper, err := proxy.Toxics.AddToxicJson(strings.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("faultproxy: add %s gate: %w", stream, err)
		}
		wrapper.Toxic.(*gateToxic).gate = g
	}
	if err := proxy.Start(); err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	return &Proxy{proxy: proxy, gate: g}, nil
}

func checkLoopback(upstream string) error {
	host, _, err := net.SplitHostPort(upstream)
	if err != nil {
		return fmt.Errorf("faultproxy: upstream %q: %w", upstream, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("faultproxy: upstream %q is not a loopback address", upstream)
}

// Addr returns the "127.0.0.1:port" address clients dial instead of the
// upstream's. It stays valid until Close.
func (p *Proxy) Addr() string {
	p.proxy.Lock()
	defer p.proxy.Unlock()
	return p.proxy.Listen
}

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.proxy.Upstream }

// Cut partitions the proxy's clients from the upstream: from its return
// until Heal, no byte passes in either direction on any connection, old or
// new, and no close passes either. Connections are not closed, so reads
// hang until their deadlines, and writes too once the socket buffers are
// full; new connections are accepted but get no bytes. Bytes sent meanwhile
// wait in the proxy and are delivered, in order, after Heal. Cutting a cut
// proxy does nothing.
//
// It fails with ctx's error if ctx has ended before it starts (the change
// itself takes no network round trip), and with [ErrClosed] after Close.
func (p *Proxy) Cut(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("faultproxy: cut: %w", err)
	}
	p.gate.cut()
	return nil
}

// Heal ends a cut: when it returns, bytes flow again on every connection,
// those opened before or during the cut included, starting with the bytes
// that waited during the cut. Closes made during the cut pass through now, after the bytes sent before
// them. Healing a proxy that is not cut does nothing.
//
// It fails with ctx's error if ctx has ended before it starts, and with
// [ErrClosed] after Close.
func (p *Proxy) Heal(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("faultproxy: heal: %w", err)
	}
	p.gate.heal()
	return nil
}

// Close stops listening and closes every proxied connection on both sides,
// and drops the bytes still on their way, cut or not. The proxy's
// goroutines end as the connections' reads return, shortly after Close.
// Closing a closed proxy does nothing. It returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.gate.close()
	p.proxy.Stop()
	return nil
}
