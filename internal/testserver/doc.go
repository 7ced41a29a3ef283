// Package testserver runs real store servers (etcd, redis-server, consul) as
// child processes for tests, and hands out free loopback ports for them.
//
// A server started with [Start] lives in its own process group, writes its
// output to a log file in the test's temporary directory, and is killed by a
// t.Cleanup when the test ends, so a test leaves no process behind. The
// [Process] it returns is a [conformance.Store]: Pause and Resume freeze and
// continue it (SIGSTOP, SIGCONT), Stop kills it (SIGKILL) and Start runs it
// again with the same binary, arguments and directory, so it keeps its
// address and whatever data it kept on disk.
//
// [Binary] finds server binaries. A missing server is a test failure, never a
// skip: `./scripts/test` installs all of them.
//
// A typical start, here of redis-server without persistence:
//
//	port := testserver.FreePort(t)
//	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
//	proc := testserver.Start(t, testserver.Config{
//		Binary: testserver.Binary(t, "redis-server"),
//		Args:   []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", ""},
//		Ready: func(ctx context.Context) error {
//			var d net.Dialer
//			conn, err := d.DialContext(ctx, "tcp", addr)
//			if err == nil {
//				conn.Close()
//			}
//			return err
//		},
//	})
//
// Only loopback addresses are used: ports come from 127.0.0.1, and callers
// must configure their servers to listen there.
package testserver
