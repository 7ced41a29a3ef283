// Package teststore starts the real stores the backends are tested and
// benchmarked against: etcd members and clusters (plain or TLS, with peer
// proxies that cut one member off, and snapshot restore), redis-server
// (plain, TLS, replica, cluster node or Sentinel), single-node Consul
// servers (HTTP or HTTPS) and a Consul cluster of 3 servers and 2 client
// agents (leave, SIGTERM, kill, force-leave, Raft leader transfer), and
// Postgres with an optional transaction-mode pgbouncer (run as the
// postgres user when the tests run as root).
//
// Every server is a [testserver.Process]: a child process in a temporary
// directory, listening on random loopback ports from [testserver.FreePorts],
// killed by a t.Cleanup when the test ends. Start functions return only once
// the server serves what a backend needs (etcd: /health true; Redis: PING
// answered; Consul: its node in the catalog of a Raft leader, so sessions
// can be created), and fail the test with t.Fatalf, quoting the server's log,
// when the options are invalid, the binary is missing ([testserver.Binary])
// or the server is not ready within [testserver.DefaultReadyTimeout]. They
// never skip: a missing server means the suite did not run.
//
// The embedded Process pauses, resumes, stops and starts a server again; a
// restarted server keeps its address, arguments and data directory, so etcd
// and Consul keep their data, while Redis, which runs without persistence,
// comes back empty.
//
// Only loopback addresses are used: servers bind, advertise and are checked
// on 127.0.0.1. [NewPKI] generates the certificates every backend's TLS
// tests use; what is specific to one backend's tests (Redis cluster slot
// assignment, Sentinel monitor settings) stays with those tests, which pass
// file paths and arguments in here.
//
// This package is for tests and benchmarks only: it imports testing.
package teststore
