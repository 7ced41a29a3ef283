package etcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
)

// conformanceTiming is what the suite may expect of the test servers.
//
// TTL 2s: the servers would grant 1s (their 500ms election timeout makes
// etcd's minimum 1.5 × 0.5s, rounded up to a second), but with 1s the core
// renews every 333ms against a 900ms deadline, and two cores shared by
// every package's -race tests stall longer than that now and then.
//
// ExpiryLag: etcd's lessor looks for expired leases every 500ms, then
// revokes through a raft round and the watch pushes the delete; TestExpiry
// measures 0–0.5s beyond the TTL on an idle machine. 1s leaves room for two
// loaded cores.
var conformanceTiming = conformance.Timing{TTL: 2 * time.Second, ExpiryLag: time.Second}

// TestConformance runs the shared suite against a real etcd process per
// subtest, each client behind its own fault proxy.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(ctx context.Context, st testing.TB) (conformance.Harness, error) {
		// The process belongs to the subtest; the harness's Close kills it.
		return &harness{server: startEtcd(st, etcdOptions{})}, nil
	})
}

type harness struct {
	server  *etcdServer
	clients faultproxy.Clients
}

var _ conformance.Harness = (*harness)(nil)

// NewBackend dials etcd through a fresh fault proxy, so that cutting one
// client's link leaves the others connected.
func (h *harness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	return h.clients.Dial(h.server.addr, func(addr string) (election.Backend, error) {
		return etcd.New(etcd.Config{Endpoints: []string{addr}, DialTimeout: 10 * time.Second})
	})
}

func (h *harness) CloseBackend(b election.Backend) error { return h.clients.Close(b) }

func (h *harness) Store() conformance.Store { return h.server.Process }

func (h *harness) Timing() conformance.Timing { return conformanceTiming }

// Capabilities: sessions queue waiting claims as entries under the
// election's range, the lowest create revision holding it; the Backend
// implements election.Notifier on its shared watch.
func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Queue: true, Notify: true}
}

// InvalidNames is empty: names are escaped into keys, so every name the
// core accepts can be stored.
func (h *harness) InvalidNames() []string { return nil }

func (h *harness) Close() error {
	errs := []error{h.clients.CloseAll()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs = append(errs, h.server.Stop(ctx)) // SIGKILL, paused or not
	return errors.Join(errs...)
}
