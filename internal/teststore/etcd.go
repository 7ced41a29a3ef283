package teststore

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/electionkit/election/internal/testserver"
)

// etcdClusterToken is every test cluster's --initial-cluster-token; a
// restore that keeps it keeps the cluster ID.
const etcdClusterToken = "electionkit-test"

// Raft timing of the members unless EtcdOptions.DefaultRaftTiming is set, in
// milliseconds as etcd's flags take it.
const (
	etcdHeartbeat       = "50"
	etcdElectionTimeout = "500"
)

// healthPollInterval is the pause between two failed health checks in
// WaitEtcdHealthy.
const healthPollInterval = 100 * time.Millisecond

// healthAttemptTimeout bounds one health check, so that a member hanging on
// a request is asked again instead of eating the whole wait.
const healthAttemptTimeout = 5 * time.Second

// EtcdOptions selects how [StartEtcd] and [StartEtcdCluster] configure the
// members. The zero value is a plain-text member with fast Raft timing.
type EtcdOptions struct {
	// DefaultRaftTiming keeps etcd's own Raft timing (100ms heartbeat,
	// 1000ms election timeout), whose minimum lease TTL is 2s. Without it
	// members run with a 50ms heartbeat and a 500ms election timeout, which
	// makes etcd's minimum lease TTL ceil(1.5 × 0.5s) = 1s, so tests can use
	// 1s TTLs; that is still ten heartbeats, enough for two loaded cores.
	DefaultRaftTiming bool
	// TLS, when set, makes the members serve clients over TLS only; peers
	// still talk plain text to each other on loopback. Nil: plain text.
	TLS *TLS
	// PeerProxies puts a proxy in front of every member's peer listener
	// (the member advertises the proxy), so that [Etcd.Isolate] can cut a
	// member off from the others.
	PeerProxies bool
}

// Etcd is one etcd member started by [StartEtcd] or [StartEtcdCluster]. The
// embedded [testserver.Process] pauses, resumes, stops and restarts it; a
// restarted member keeps its address and data directory and rejoins its
// cluster. It is a conformance.Store.
type Etcd struct {
	*testserver.Process
	// Addr is the member's client address, "127.0.0.1:port", which speaks
	// TLS only when EtcdOptions.TLS was set.
	Addr string
	// DataDir is the member's data directory, an absolute path.
	DataDir string
	// health asks the member's /health endpoint.
	health func(ctx context.Context) error
	// name, peerURL and cluster are the member's --name,
	// --initial-advertise-peer-urls and --initial-cluster, for Restore.
	name, peerURL, cluster string
	// peers carries the cluster's peer traffic (nil without
	// EtcdOptions.PeerProxies); index is the member's place in it.
	peers *etcdPeerNet
	index int
}

// StartEtcd starts a single-member etcd cluster and returns once the member
// reports healthy, which is when it serves linearizable reads and grants
// leases. It fails the test if opts is invalid, the etcd binary is missing,
// or the member is not healthy within [testserver.DefaultReadyTimeout]; the
// process is killed when the test ends.
func StartEtcd(t testing.TB, opts EtcdOptions) *Etcd {
	t.Helper()
	return startEtcdMembers(t, 1, opts)[0]
}

// StartEtcdCluster starts an n-member etcd cluster, every member a process
// of its own configured by opts, and returns the members, in the order of
// their names m0, m1, …, once every one reports healthy (the cluster has a
// Raft leader). It fails the test as [StartEtcd] does, and if n < 1.
func StartEtcdCluster(t testing.TB, n int, opts EtcdOptions) []*Etcd {
	t.Helper()
	if n < 1 {
		t.Fatalf("teststore: StartEtcdCluster: n = %d, want at least 1", n)
	}
	members := startEtcdMembers(t, n, opts)
	if n > 1 {
		WaitEtcdHealthy(t, members)
	}
	return members
}

// WaitEtcdHealthy waits until every member reports healthy, as after
// restarting a cluster member (a member's own Start does not wait for its
// cluster). Every member must be running. It fails the test if one is not
// healthy within [testserver.DefaultReadyTimeout].
func WaitEtcdHealthy(t testing.TB, members []*Etcd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testserver.DefaultReadyTimeout)
	defer cancel()
	for _, m := range members {
		for {
			attemptCtx, cancelAttempt := context.WithTimeout(ctx, healthAttemptTimeout)
			err := m.health(attemptCtx)
			cancelAttempt()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("teststore: etcd member %s not healthy within %v: %v", m.Addr, testserver.DefaultReadyTimeout, err)
			case <-time.After(healthPollInterval):
			}
		}
	}
}

// startEtcdMembers starts n members of one new cluster. A member alone waits
// until it is healthy; members of a larger cluster are healthy only
// together, so they are all started first and checked by the caller.
func startEtcdMembers(t testing.TB, n int, opts EtcdOptions) []*Etcd {
	t.Helper()
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
	}
	check := newCheckClient(t, checkTLS(t, "EtcdOptions", opts.TLS))
	bin := testserver.Binary(t, "etcd")
	count := 2 * n
	if opts.PeerProxies {
		count = 3 * n
	}
	ports := testserver.FreePorts(t, count)
	clientPorts, peerPorts, advertised := ports[:n], ports[n:2*n], ports[n:2*n]
	var peers *etcdPeerNet
	if opts.PeerProxies {
		advertised = ports[2*n:]
		var listen, upstream []string
		for i := range n {
			listen = append(listen, fmt.Sprintf("127.0.0.1:%d", advertised[i]))
			upstream = append(upstream, fmt.Sprintf("127.0.0.1:%d", peerPorts[i]))
		}
		peers = newEtcdPeerNet(t, listen, upstream)
	}
	var cluster []string
	for i, p := range advertised {
		cluster = append(cluster, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, p))
	}
	members := make([]*Etcd, n)
	for i := range n {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPorts[i]))
		clientURL := scheme + "://" + addr
		listenPeerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPorts[i])
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", advertised[i])
		dir := t.TempDir()
		dataDir := filepath.Join(dir, "data")
		args := []string{
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", dataDir,
			"--listen-client-urls", clientURL,
			"--advertise-client-urls", clientURL,
			"--listen-peer-urls", listenPeerURL,
			"--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(cluster, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", etcdClusterToken,
			"--log-level", "warn",
		}
		if !opts.DefaultRaftTiming {
			args = append(args, "--heartbeat-interval", etcdHeartbeat, "--election-timeout", etcdElectionTimeout)
		}
		if opts.TLS != nil {
			args = append(args, "--cert-file", opts.TLS.CertFile, "--key-file", opts.TLS.KeyFile)
			if opts.TLS.ClientCertAuth {
				args = append(args, "--client-cert-auth", "--trusted-ca-file", opts.TLS.CAFile)
			}
		}
		m := &Etcd{
			Addr: addr, DataDir: dataDir, health: etcdHealth(check, clientURL),
			name: fmt.Sprintf("m%d", i), peerURL: peerURL, cluster: strings.Join(cluster, ","),
			peers: peers, index: i,
		}
		var ready func(context.Context) error
		if n == 1 {
			ready = m.health
		}
		m.Process = testserver.Start(t, testserver.Config{
			Name:   fmt.Sprintf("etcd-m%d", i),
			Binary: bin,
			Args:   args,
			Dir:    dir,
			Ready:  ready,
		})
		members[i] = m
	}
	return members
}

// etcdHealth returns a check of the member's /health endpoint, which
// answers true once the member serves linearizable reads.
func etcdHealth(client *http.Client, clientURL string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var answer struct {
			Health string `json:"health"`
			Reason string `json:"reason"`
		}
		if err := getJSON(ctx, client, clientURL+"/health", "", &answer); err != nil {
			return err
		}
		if answer.Health != "true" {
			return fmt.Errorf("/health: %q %s", answer.Health, answer.Reason)
		}
		return nil
	}
}

// Restore replaces the data directory of the stopped member m with one
// made by `etcdutl snapshot restore` from the snapshot file (as written by
// the Maintenance API's Snapshot), under the member's own name, peer URL,
// cluster and cluster token, so that the cluster ID stays the same. A
// bumpRevision above zero passes --bump-revision bumpRevision
// --mark-compacted, the restore etcd's docs prescribe when clients hold
// revisions; zero restores the snapshot's revisions as they are, so that
// the cluster's revision goes back. Start the member again afterwards.
// For a cluster of several members, restore every member from the same
// snapshot. It fails the test if etcdutl is missing.
func (m *Etcd) Restore(t testing.TB, snapshot string, bumpRevision uint64) error {
	t.Helper()
	if m.PID() != 0 {
		return fmt.Errorf("teststore: restore etcd member %s: still running (pid %d)", m.name, m.PID())
	}
	bin := testserver.Binary(t, "etcdutl")
	fresh := filepath.Join(t.TempDir(), "data")
	args := []string{"snapshot", "restore", snapshot,
		"--data-dir", fresh,
		"--name", m.name,
		"--initial-cluster", m.cluster,
		"--initial-cluster-token", etcdClusterToken,
		"--initial-advertise-peer-urls", m.peerURL,
	}
	if bumpRevision > 0 {
		args = append(args, "--bump-revision", strconv.FormatUint(bumpRevision, 10), "--mark-compacted")
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("teststore: etcdutl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("teststore: restore etcd member %s: %w", m.name, err)
	}
	if err := os.Rename(fresh, m.DataDir); err != nil {
		return fmt.Errorf("teststore: restore etcd member %s: %w", m.name, err)
	}
	return nil
}
