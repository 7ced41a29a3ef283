package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/redis"
)

// sentinelFlags are how a candidate reaches Redis through Sentinel, which
// a backend URL cannot say: a failover client, every connection (to a
// Sentinel or to a data server, whichever the Sentinels name) going
// through the test's fault proxy for that address.
type sentinelFlags struct {
	master, sentinels, via, prefix string
	ttl                            time.Duration
	waitReplicas                   int
}

// open builds the failover client and the backend, with WaitReplicas (a
// claim or renewal counts once a replica has it, so that a failover loses
// none a leader relied on) and a subscription check short enough to notice
// a dead primary within a TTL.
func (f sentinelFlags) open(ctx context.Context) (election.Backend, election.Config, error) {
	via := map[string]string{}
	for _, pair := range strings.Split(f.via, ",") {
		addr, proxy, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, election.Config{}, fmt.Errorf("%w: -via %q: want addr=proxy pairs", election.ErrInvalidArgument, f.via)
		}
		via[addr] = proxy
	}
	var dialer net.Dialer
	client := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:            f.master,
		SentinelAddrs:         strings.Split(f.sentinels, ","),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			proxy, ok := via[addr]
			if !ok {
				// Nothing may bypass the proxies: a cut must cut it all.
				return nil, fmt.Errorf("no proxy for %s", addr)
			}
			return dialer.DialContext(ctx, network, proxy)
		},
	})
	b, err := redis.New(client, redis.Config{
		Prefix:            f.prefix,
		WaitReplicas:      f.waitReplicas,
		WaitTimeout:       f.ttl / 4,
		SubscriptionCheck: f.ttl / 4,
	})
	if err != nil {
		_ = client.Close()
		return nil, election.Config{}, err
	}
	owned := ownedClient{Backend: b, client: client}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = owned.Close()
		return nil, election.Config{}, fmt.Errorf("%w: %w", election.ErrUnavailable, err)
	}
	return owned, election.Config{TTL: f.ttl}, nil
}

// ownedClient is a Backend that closes its client too (redis.New leaves
// the caller's client open). Embedding keeps the Backend's optional
// interfaces.
type ownedClient struct {
	*redis.Backend
	client *goredis.Client
}

func (o ownedClient) Close() error { return errors.Join(o.Backend.Close(), o.client.Close()) }
