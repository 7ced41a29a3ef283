package etcd_test

import (
	"crypto/x509"
	"testing"

	"github.com/electionkit/election/internal/teststore"
)

// etcdOptions selects how startEtcd configures the server.
type etcdOptions struct {
	// defaultRaftTiming keeps etcd's own 100ms/1000ms timing, whose
	// minimum lease TTL is 2s; by default the servers run at 50ms/500ms,
	// whose minimum is 1s, so the suite can use 1s TTLs.
	defaultRaftTiming bool
	// pki, when set, makes the server serve clients over TLS only.
	pki *teststore.PKI
	// clientCertAuth requires clients to present a certificate of pki.
	clientCertAuth bool
}

// store translates the options into teststore's.
func (o etcdOptions) store() teststore.EtcdOptions {
	opts := teststore.EtcdOptions{DefaultRaftTiming: o.defaultRaftTiming}
	if o.pki != nil {
		opts.TLS = o.pki.TLS(o.clientCertAuth)
	}
	return opts
}

// etcdServer is a real etcd process on loopback ports.
type etcdServer struct {
	*teststore.Etcd
	// addr is the client address, "127.0.0.1:port".
	addr string
}

// wrap gives m the name the tests know its address by.
func wrap(m *teststore.Etcd) *etcdServer { return &etcdServer{Etcd: m, addr: m.Addr} }

// startEtcd starts a single-member etcd process in a temporary directory.
// The test fails if it is not ready within testserver's timeout; the
// process is killed when the test ends.
func startEtcd(t testing.TB, opts etcdOptions) *etcdServer {
	t.Helper()
	return wrap(teststore.StartEtcd(t, opts.store()))
}

// startCluster starts an n-member etcd cluster, every member a process of
// its own, and waits until it has a leader.
func startCluster(t testing.TB, n int) []*etcdServer {
	t.Helper()
	var servers []*etcdServer
	for _, m := range teststore.StartEtcdCluster(t, n, teststore.EtcdOptions{}) {
		servers = append(servers, wrap(m))
	}
	return servers
}

// waitHealthy waits until every member reports healthy.
func waitHealthy(t testing.TB, servers []*etcdServer) {
	t.Helper()
	members := make([]*teststore.Etcd, len(servers))
	for i, s := range servers {
		members[i] = s.Etcd
	}
	teststore.WaitEtcdHealthy(t, members)
}

// certPool returns a pool holding the CA certificate in file.
func certPool(t testing.TB, file string) *x509.CertPool {
	t.Helper()
	cfg, err := (&teststore.TLS{CAFile: file}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RootCAs
}
