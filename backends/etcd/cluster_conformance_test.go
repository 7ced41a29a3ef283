package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/etcd"
	"github.com/electionkit/election/conformance"
	"github.com/electionkit/election/internal/faultproxy"
	"github.com/electionkit/election/internal/teststore"
)

// TestClusterConformance runs the shared suite against a three-member etcd
// cluster per subtest. Each client is attached to one member, in turn
// (client i to member i mod 3), behind a fault proxy of its own, so the
// suite's candidates talk to different members and every handoff crosses
// Raft. Store faults act on the cluster as a whole: Pause and Stop act on
// every member. Faults of one member are TestClusterMinorityPartition's and
// TestClusterLeaderKill's.
func TestClusterConformance(t *testing.T) {
	conformance.Run(t, func(ctx context.Context, st testing.TB) (conformance.Harness, error) {
		return &clusterHarness{members: teststore.StartEtcdCluster(st, 3, teststore.EtcdOptions{})}, nil
	})
}

type clusterHarness struct {
	members []*teststore.Etcd
	clients faultproxy.Clients

	mu   sync.Mutex
	next int // the member the next client is attached to
}

var _ conformance.Harness = (*clusterHarness)(nil)

func (h *clusterHarness) NewBackend(ctx context.Context) (election.Backend, conformance.Link, error) {
	h.mu.Lock()
	m := h.members[h.next%len(h.members)]
	h.next++
	h.mu.Unlock()
	return h.clients.Dial(m.Addr, func(addr string) (election.Backend, error) {
		return etcd.New(etcd.Config{Endpoints: []string{addr}, DialTimeout: 10 * time.Second})
	})
}

func (h *clusterHarness) CloseBackend(b election.Backend) error { return h.clients.Close(b) }

func (h *clusterHarness) Store() conformance.Store { return clusterStore{h.members} }

// Timing: as for one member (conformanceTiming); Raft rounds among three
// loopback members add milliseconds, not seconds.
func (h *clusterHarness) Timing() conformance.Timing { return conformanceTiming }

func (h *clusterHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Queue: true, Notify: true}
}

func (h *clusterHarness) InvalidNames() []string { return nil }

func (h *clusterHarness) Close() error {
	errs := []error{h.clients.CloseAll()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range h.members {
		errs = append(errs, m.Stop(ctx))
	}
	return errors.Join(errs...)
}

// clusterStore is the fault controls over every member at once.
type clusterStore struct{ members []*teststore.Etcd }

func (s clusterStore) each(ctx context.Context, op func(*teststore.Etcd, context.Context) error) error {
	var errs []error
	for _, m := range s.members {
		errs = append(errs, op(m, ctx))
	}
	return errors.Join(errs...)
}

func (s clusterStore) Pause(ctx context.Context) error {
	return s.each(ctx, func(m *teststore.Etcd, ctx context.Context) error { return m.Pause(ctx) })
}

func (s clusterStore) Resume(ctx context.Context) error {
	return s.each(ctx, func(m *teststore.Etcd, ctx context.Context) error { return m.Resume(ctx) })
}

func (s clusterStore) Stop(ctx context.Context) error {
	return s.each(ctx, func(m *teststore.Etcd, ctx context.Context) error { return m.Stop(ctx) })
}

// Start starts every member and returns once the cluster answers a
// linearizable read (it has a Raft leader): a member alone is not ready
// until its peers are up.
func (s clusterStore) Start(ctx context.Context) error {
	if err := s.each(ctx, func(m *teststore.Etcd, ctx context.Context) error { return m.Start(ctx) }); err != nil {
		return err
	}
	var endpoints []string
	for _, m := range s.members {
		endpoints = append(endpoints, m.Addr)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		readCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Get(readCtx, "health", clientv3.WithCountOnly())
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd cluster not serving after a start: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
