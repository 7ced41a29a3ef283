package consul

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// recorder is an HTTP transport that records each request it carries and
// the bytes of each response body, except the watches' blocking queries.
type recorder struct {
	base http.RoundTripper

	mu    sync.Mutex
	reqs  []string
	bytes int64
	// listings and listed count the blocking queries' answers and their
	// bytes as read (decompressed).
	listings, listed int64
}

// recordedBackend is a.backend whose requests rec records.
func (a *testAgent) recordedBackend(t *testing.T, mod func(*Config)) (*Backend, *recorder) {
	t.Helper()
	rec := &recorder{base: http.DefaultTransport}
	client, err := api.NewClient(&api.Config{Address: a.addr, HttpClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	return a.backend(t, func(c *Config) {
		c.Address, c.Client = "", client
		if mod != nil {
			mod(c)
		}
	}), rec
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	listing := req.URL.Query().Has("recurse")
	r.mu.Lock()
	if listing {
		r.listings++
	} else {
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
	}
	r.mu.Unlock()
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, r: r, listing: listing}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	r       *recorder
	listing bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.r.mu.Lock()
	if b.listing {
		b.r.listed += int64(n)
	} else {
		b.r.bytes += int64(n)
	}
	b.r.mu.Unlock()
	return n, err
}

// during returns the requests made, and the response bytes read, while f ran.
func (r *recorder) during(f func()) (reqs []string, bytes int64) {
	r.mu.Lock()
	n, b := len(r.reqs), r.bytes
	r.mu.Unlock()
	f()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs[n:]...), r.bytes - b
}

// TestRenewCost: Renew makes the same two small requests (session renewal,
// marker read) for 3 claims or 300, and still reports exactly the claims
// the store no longer holds: one released by token through another
// session (the marker tells, then one full check), and one deleted by a
// write that bypassed this package (the shared watch tells).
func TestRenewCost(t *testing.T) {
	a := startAgent(t, agentOptions{})
	b, rec := a.recordedBackend(t, nil)
	other := a.backend(t, nil)
	s, so := openSession(t, b, 30*time.Second), openSession(t, other, 30*time.Second)

	var claims []election.Claim
	var costs []string
	for _, n := range []int{3, 300} {
		for i := len(claims); i < n; i++ {
			claims = append(claims, claim(t, s, fmt.Sprintf("cost-%03d", i), fmt.Sprintf("tok-%d", i), "r"))
		}
		var err error
		reqs, bytes := rec.during(func() { err = s.Renew(t.Context(), claims) })
		if err != nil {
			t.Fatalf("Renew of %d claims = %v", n, err)
		}
		if len(reqs) != 2 || bytes > 2048 {
			t.Fatalf("Renew of %d claims made %d requests (%v) reading %d bytes, want 2 small ones", n, len(reqs), reqs, bytes)
		}
		costs = append(costs, fmt.Sprintf("%d claims: %v, %d bytes", n, reqs, bytes))
	}
	t.Logf("Renew: %s", strings.Join(costs, "; "))

	// Released by its token through another session: the holder's marker
	// goes with it, so the next Renew checks every claim once.
	released := claims[17]
	if err := so.Release(t.Context(), released); err != nil {
		t.Fatal(err)
	}
	var err error
	reqs, _ := rec.during(func() { err = s.Renew(t.Context(), claims) })
	var no *election.NotOwnerError
	if !errors.As(err, &no) || len(no.Claims) != 1 || no.Claims[0] != released {
		t.Fatalf("Renew after a release elsewhere = %v, want NotOwnerError listing exactly %q", err, released.Name)
	}
	t.Logf("Renew after a release elsewhere: %d requests (%d claims read in transactions of %d)", len(reqs), len(claims), maxTxnOps)
	claims = append(claims[:17:17], claims[18:]...)
	if reqs, _ := rec.during(func() { err = s.Renew(t.Context(), claims) }); err != nil || len(reqs) != 2 {
		t.Fatalf("Renew after the full check = %v with %d requests %v, want nil with 2", err, len(reqs), reqs)
	}

	// Deleted by a write that bypassed this package: once the shared watch
	// has seen it, Renew reports it, with no more requests.
	gone := claims[42]
	ch, err := b.Watch(t.Context(), gone.Name)
	if err != nil {
		t.Fatal(err)
	}
	next(t, ch, 10*time.Second)
	if _, err := a.client(t).KV().Delete(b.Key(gone.Name), nil); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch, 10*time.Second); ev.Leader != nil || ev.Err != nil {
		t.Fatalf("watch after the foreign delete = %+v, want vacant", ev)
	}
	reqs, _ = rec.during(func() { err = s.Renew(t.Context(), claims) })
	if !errors.As(err, &no) || len(no.Claims) != 1 || no.Claims[0] != gone || len(reqs) != 2 {
		t.Fatalf("Renew after a foreign delete seen by the watch = %v with %d requests, want NotOwnerError listing exactly %q with 2",
			err, len(reqs), gone.Name)
	}
	if err := s.Release(t.Context(), gone); !errors.Is(err, election.ErrNotOwner) {
		t.Fatalf("Release of the deleted claim = %v, want ErrNotOwner", err)
	}
}
