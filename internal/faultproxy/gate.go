package faultproxy

import (
	"sync"

	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
)

// gateType is the name under which gateToxic is registered with Toxiproxy.
const gateType = "electionkit_gate"

// gate is the state that a proxy's two gate toxics (one per direction)
// share: open, cut or closed. While cut, no chunk passes and the chunks
// wait, in order, as TCP segments wait for retransmission during a real
// partition; the kernel's socket buffers fill behind them. Once closed,
// chunks are dropped, so no goroutine of the proxy can be left blocked on a
// connection whose other end is gone.
type gate struct {
	// sending is held for reading by every chunk being handed on, and for
	// writing by cut, so that cut returns only when no send is under way.
	sending sync.RWMutex

	mu       sync.Mutex
	isCut    bool
	open     chan struct{} // closed while the gate is open
	stopSend chan struct{} // closed when a cut begins; a fresh one per heal
	closed   chan struct{} // closed by close
}

func newGate() *gate {
	open := make(chan struct{})
	close(open)
	return &gate{open: open, stopSend: make(chan struct{}), closed: make(chan struct{})}
}

// cut stops every chunk: when it returns, none is being handed on and none
// will be until heal.
func (g *gate) cut() {
	g.mu.Lock()
	if g.isCut {
		g.mu.Unlock()
		return
	}
	g.isCut = true
	g.open = make(chan struct{})
	close(g.stopSend)
	g.mu.Unlock()
	// Wait out the sends that had started; the closed stopSend makes the
	// blocked ones give up.
	g.sending.Lock()
	g.sending.Unlock()
}

// heal lets chunks pass again, the waiting ones first.
func (g *gate) heal() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isCut {
		return
	}
	g.isCut = false
	g.stopSend = make(chan struct{})
	close(g.open)
}

// close makes the gate drop every chunk from now on.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.closed:
	default:
		close(g.closed)
	}
}

func (g *gate) state() (open, stopSend chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open, g.stopSend
}

// pass hands c on to out once the gate is open. It returns false if the
// toxic was interrupted first (c is then lost); after close it drops c and
// returns true.
func (g *gate) pass(out chan<- *stream.StreamChunk, c *stream.StreamChunk, interrupt <-chan struct{}) bool {
	for {
		open, stopSend := g.state()
		select {
		case <-open:
		case <-g.closed:
			return true
		case <-interrupt:
			return false
		}
		g.sending.RLock()
		select {
		case <-stopSend: // a cut began after state: wait for the heal
			g.sending.RUnlock()
			continue
		default:
		}
		select {
		case out <- c:
			g.sending.RUnlock()
			return true
		case <-stopSend:
			g.sending.RUnlock()
		case <-g.closed:
			g.sending.RUnlock()
			return true
		case <-interrupt:
			g.sending.RUnlock()
			return false
		}
	}
}

// waitOpen returns when the gate is open or closed, or, with false, when
// interrupt fires first.
func (g *gate) waitOpen(interrupt <-chan struct{}) bool {
	open, _ := g.state()
	select {
	case <-open:
		return true
	case <-g.closed:
		return true
	case <-interrupt:
		return false
	}
}

// gateToxic is the last toxic of every link of a proxy, in both
// directions, and is never removed: cuts and heals switch its gate instead
// of adding and removing toxics. Toxiproxy's own toxics block forever on a
// send to a writer that has stopped (its connection reset), and its toxic
// removal can strand goroutines; behind a gate that drops after Close, every
// goroutine of the chain ends once the proxy's connections are closed.
type gateToxic struct {
	gate *gate // set before the proxy starts, never changed
}

// Pipe forwards chunks through the gate until its input ends, which it
// passes on (closing the output) only when the gate is open, so a close made
// during a cut reaches the other side after the heal, like its bytes.
func (t *gateToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				if t.gate.waitOpen(stub.Interrupt) {
					stub.Close()
				}
				return
			}
			if !t.gate.pass(stub.Output, c, stub.Interrupt) {
				return
			}
		}
	}
}

func init() {
	toxics.Register(gateType, new(gateToxic))
}
