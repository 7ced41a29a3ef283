package consul

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
	"github.com/electionkit/election/internal/teststore"
)

// TestClusterConformance runs the shared suite, with its faults and its
// history checker, against a Consul cluster of 3 servers and 2 client
// agents (a fresh one per subtest): the suite's clients alternate between
// the two client agents, each behind its own fault proxy, so candidates of
// one election talk to different agents, as on different hosts. The
// suite's store faults (pause, kill and restart) act on the three servers
// at once; the client agents keep running.
func TestClusterConformance(t *testing.T) {
	conformance.Run(t, func(ctx context.Context, st testing.TB) (conformance.Harness, error) {
		return &clusterHarness{cluster: teststore.StartConsulCluster(st, teststore.ConsulClusterOptions{MinTTL: testMinTTL})}, nil
	})
}

// clusterHarness is a conformance.Harness over a teststore.ConsulCluster.
type clusterHarness struct {
	cluster *teststore.ConsulCluster
	clients faultproxy.Clients
	next    atomic.Int64 // the client agent of the next backend
}

var _ conformance.Harness = (*clusterHarness)(nil)

func (h *clusterHarness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	agent := h.cluster.Clients[int(h.next.Add(1)-1)%len(h.cluster.Clients)]
	return h.clients.Dial(agent.Addr, func(addr string) (election.Backend, error) {
		return New(Config{Address: addr, MinTTL: testMinTTL, WatchWait: 5 * time.Second})
	})
}

func (h *clusterHarness) CloseBackend(b election.Backend) error { return h.clients.Close(b) }

func (h *clusterHarness) Store() conformance.Store { return h.cluster.ServerStore() }

// Timing: as for one server with the default lock-delay (see
// harness.Timing); a client agent forwards each request to a server over
// RPC, which adds a loopback round trip.
func (h *clusterHarness) Timing() conformance.Timing { return conformanceTiming(0) }

func (h *clusterHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Notify: true}
}

func (h *clusterHarness) InvalidNames() []string { return nil }

func (h *clusterHarness) Close() error {
	errs := []error{h.clients.CloseAll()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range h.cluster.Agents() {
		errs = append(errs, a.Stop(ctx)) // SIGKILL, paused or not
	}
	return errors.Join(errs...)
}
