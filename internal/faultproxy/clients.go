package faultproxy

import (
	"errors"
	"fmt"
	"sync"

	"github.com/electionkit/election"
)

// Clients tracks backends that each reach one store through a proxy of
// their own, as a conformance harness hands them out: cutting one client's
// link leaves the others connected. The zero value is ready to use.
type Clients struct {
	mu    sync.Mutex
	links map[election.Backend]*Proxy
}

// Dial starts a proxy to upstream and opens a backend through it with open,
// which gets the proxy's address. On error nothing is left open.
func (c *Clients) Dial(upstream string, open func(addr string) (election.Backend, error)) (election.Backend, *Proxy, error) {
	p, err := New(upstream)
	if err != nil {
		return nil, nil, err
	}
	b, err := open(p.Addr())
	if err != nil {
		return nil, nil, errors.Join(err, p.Close())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.links == nil {
		c.links = map[election.Backend]*Proxy{}
	}
	c.links[b] = p
	return b, p, nil
}

// Close closes b (election.CloseBackend) and its proxy. It fails for a
// backend Dial did not return or that is already closed.
func (c *Clients) Close(b election.Backend) error {
	c.mu.Lock()
	p, ok := c.links[b]
	delete(c.links, b)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("faultproxy: backend %p was not made by Dial or is already closed", b)
	}
	return errors.Join(election.CloseBackend(b), p.Close())
}

// CloseAll closes every backend still open and its proxy.
func (c *Clients) CloseAll() error {
	c.mu.Lock()
	links := c.links
	c.links = nil
	c.mu.Unlock()
	var errs []error
	for b, p := range links {
		errs = append(errs, election.CloseBackend(b), p.Close())
	}
	return errors.Join(errs...)
}
