// Package bench measures the graceful handoff and crash takeover times of
// github.com/electionkit/election side by side with peer libraries, each
// scenario on one real etcd, redis-server or Consul server started for the
// run: etcd's client/v3/concurrency Election, go-redsync/redsync,
// bsm/redislock and Consul's api.Lock. It is a separate module so that the
// peers stay out of the library's go.mod. See README.md for how to run it,
// what each benchmark measures and the latest results.
package bench
