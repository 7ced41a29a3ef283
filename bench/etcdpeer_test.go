package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/electionkit/election/internal/faultproxy"
)

// concurrencyLibrary is etcd's own client/v3/concurrency Election on a
// Session. ttlSeconds 0 keeps the Session's default TTL (60s).
func concurrencyLibrary(ttlSeconds int) library {
	return library{
		name: "concurrency",
		join: func(ctx context.Context, st *store, name, id string, link *faultproxy.Proxy) (participant, error) {
			return joinConcurrency(ctx, st, name, id, link, ttlSeconds)
		},
	}
}

// etcdElection is one process using concurrency.Election: its own client,
// one Session (one lease, kept alive by the session) and one Election.
type etcdElection struct {
	client *clientv3.Client
	sess   *concurrency.Session
	el     *concurrency.Election
	id     string
	link   *faultproxy.Proxy
	admin  *clientv3.Client
	ttl    time.Duration // granted
}

var _ crasher = (*etcdElection)(nil)

func joinConcurrency(ctx context.Context, st *store, name, id string, link *faultproxy.Proxy, ttlSeconds int) (*etcdElection, error) {
	addr := st.addr
	if link != nil {
		addr = link.Addr()
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	var opts []concurrency.SessionOption
	if ttlSeconds > 0 {
		opts = append(opts, concurrency.WithTTL(ttlSeconds))
	}
	sess, err := concurrency.NewSession(client, opts...)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	e := &etcdElection{
		client: client,
		sess:   sess,
		el:     concurrency.NewElection(sess, "/bench/"+name+"/"),
		id:     id,
		link:   link,
		admin:  st.etcd,
	}
	// The TTL etcd granted, for the crash measurement's reference.
	ttl, err := st.etcd.TimeToLive(ctx, sess.Lease())
	if err != nil {
		e.close()
		return nil, err
	}
	e.ttl = time.Duration(ttl.GrantedTTL) * time.Second
	return e, nil
}

// acquire campaigns: Campaign returns once every key of the election
// created before ours is gone.
func (e *etcdElection) acquire(ctx context.Context) (time.Time, error) {
	if err := e.el.Campaign(ctx, e.id); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// release resigns: deletes the leader key.
func (e *etcdElection) release(ctx context.Context) error { return e.el.Resign(ctx) }

// crash cuts the link, then renews the session's lease once from the
// benchmark's direct client. concurrency.Session keeps its lease alive from
// a background stream whose send times are not visible; this last renewal
// has a known send time, like ours, and nothing from the holder reaches
// etcd after the cut.
func (e *etcdElection) crash(ctx context.Context) (crashInfo, error) {
	if e.link == nil {
		return crashInfo{}, errors.New("crash: no link to cut")
	}
	if err := e.link.Cut(ctx); err != nil {
		return crashInfo{}, err
	}
	cut := time.Now()
	sent := time.Now()
	if _, err := e.admin.KeepAliveOnce(ctx, e.sess.Lease()); err != nil {
		return crashInfo{}, fmt.Errorf("last renewal: %w", err)
	}
	return crashInfo{cut: cut, lastRenewal: sent, ttl: e.ttl}, nil
}

// close stops the session's keepalive without revoking the lease
// (Session.Orphan) and closes the client.
func (e *etcdElection) close() {
	e.sess.Orphan()
	_ = e.client.Close()
}
