package consul

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

var (
	_ election.Backend       = (*Backend)(nil)
	_ election.NameValidator = (*Backend)(nil)
	_ election.Notifier      = (*Backend)(nil)
)

// Backend is the Consul implementation of [election.Backend]: a client of
// one Consul agent's HTTP API, safe for concurrent use. Each session it opens
// is one Consul session; each election is one KV key locked by that session.
// See the package documentation for the safety model.
type Backend struct {
	s      settings
	client *api.Client
	owned  *http.Transport // closed by Close; nil for a caller's client

	// life ends when the backend is closed; it stops every watch.
	life context.Context
	stop context.CancelFunc
	// watches holds the shared blocking queries, one per bucket in use,
	// and every channel Watch handed out.
	watches hub

	// smu guards sessions, the backend's open sessions by ID (see
	// foreign.go).
	smu      sync.Mutex
	sessions map[string]*session
}

// New validates cfg and returns a Backend. It does no I/O: an unreachable
// agent, a rejected token or a TLS mismatch (see [TLSConfig]) shows up on
// the first operation. Every problem with cfg or the CONSUL_* environment
// is reported at once in an error wrapping [election.ErrInvalidArgument]
// that names the field or variable.
func New(cfg Config) (*Backend, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	b := &Backend{s: s, client: s.client}
	if b.client == nil {
		b.client, err = api.NewClient(s.api)
		if err != nil {
			return nil, invalid("TLS", "%v", err)
		}
		b.owned = s.api.Transport
	}
	b.life, b.stop = context.WithCancel(context.Background())
	b.watches.b = b
	return b, nil
}

// Close stops every watch of the backend, waits for their goroutines to
// end and, if the backend built its own client, closes its idle
// connections. It does not destroy open sessions: close them first, or let
// their TTL run out. Operations after Close fail; Close is idempotent and
// always returns nil.
func (b *Backend) Close() error {
	if !b.watches.close() {
		return nil
	}
	b.stop()
	b.watches.wait()
	if b.owned != nil {
		b.owned.CloseIdleConnections()
	}
	return nil
}

// Limits reports Consul's session TTL bounds: MinTTL is Config.MinTTL (the
// servers' session_ttl_min, 10s by default) and MaxTTL is 24h. Names are
// limited only by the core's rules (256 bytes): any such name can be stored.
func (b *Backend) Limits() election.Limits {
	return election.Limits{MinTTL: b.s.minTTL, MaxTTL: MaxTTL}
}

// ValidateName implements [election.NameValidator]. Every name that passes
// the core's rules is stored (escaped, see [Config.Prefix]); ValidateName
// applies those rules so that direct users of the Backend get the same
// [election.ErrInvalidArgument] as users of the core.
func (b *Backend) ValidateName(name string) error {
	return election.ValidateName(nil, name)
}

// Prefix returns the validated KV prefix election keys live under.
func (b *Backend) Prefix() string { return b.s.prefix }

// Key returns the KV key that holds the election name, for operators (ACL
// rules, `consul kv get`) and tests: Prefix + "/" + the name's bucket (two
// hex digits) + "/" + the escaped name. See docs/record-format.md.
func (b *Backend) Key(name string) string {
	return b.bucketPrefix(bucketOf(name)) + escapeName(name)
}

// Leader reads the holder of the election name. It returns
// [election.ErrNoLeader] when the key is absent or no session holds it, an
// error wrapping [election.ErrUnavailable] when the agent does not answer,
// and one wrapping [election.ErrInvalidArgument] for a bad name or a
// rejected token. A key whose value is not an election record (written by
// another program, or by a build from before record format 1) is held by an
// unknown writer, never vacant: the error names the key and wraps an
// *[election.TakenError] whose holder has an empty ID and the key's
// ModifyIndex as its fence. The read uses Consul's default consistency
// (served by the Raft leader).
func (b *Backend) Leader(ctx context.Context, name string) (election.Leader, error) {
	if err := b.check(name); err != nil {
		return election.Leader{}, err
	}
	what := fmt.Sprintf("leader %q", name)
	p, _, err := b.client.KV().Get(b.Key(name), b.query(ctx))
	if err != nil {
		return election.Leader{}, storeErr(what, err)
	}
	v := view(name, p)
	switch {
	case v.foreign != nil:
		return election.Leader{}, v.takenErr(what)
	case v.leader == nil:
		return election.Leader{}, election.ErrNoLeader
	}
	return *v.leader, nil
}

// OpenSession creates one Consul session: TTL ttl, on the prefix's
// session node ([Backend.SessionNode], registered in the catalog on first
// use) rather than the agent's, with no health checks, so that only the TTL
// or an operator invalidates it (not an agent leaving the cluster, which
// deregisters its node and the sessions on it), behavior "delete" (its keys
// are deleted when it is invalidated), and the TTL and lock-delay of
// Config.LockDelay: by default a lock-delay of ttl and a Consul TTL of
// ttl/2 (at least MinTTL). Consul starts the session's timer when it
// creates it and invalidates it no earlier than its TTL (usually 2× its
// TTL) after creation or the last renewal, and, through a defect, at times
// at any moment; the lock-delay is what keeps a successor from being
// elected before the holder's deadline.
//
// Errors: [election.ErrInvalidArgument] for a ttl outside Limits or a
// rejected token; [election.ErrUnavailable] when the agent does not answer.
func (b *Backend) OpenSession(ctx context.Context, ttl time.Duration) (election.Session, error) {
	if b.life.Err() != nil {
		return nil, errClosed
	}
	if ttl < b.s.minTTL || ttl > MaxTTL {
		return nil, invalid("ttl", "%v is outside the agent's session TTL range [%v, %v] (see Config.MinTTL)", ttl, b.s.minTTL, MaxTTL)
	}
	// The body is written by hand: api.Session.Create omits a zero
	// LockDelay, and Consul then applies its own 15s default.
	sessionTTL, lockDelay := b.s.sessionTimes(ttl)
	body := map[string]any{
		"Name":       b.s.sessionName,
		"Node":       b.SessionNode(),
		"TTL":        sessionTTL.String(),
		"Behavior":   api.SessionBehaviorDelete,
		"LockDelay":  lockDelay.String(),
		"NodeChecks": []string{},
	}
	var out struct{ ID string }
	_, err := b.client.Raw().Write("/v1/session/create", body, &out, b.write(ctx))
	if missingNode(err) {
		// The first session of the prefix in this datacenter, or an
		// operator deregistered the node: register it, once.
		if err := b.registerSessionNode(ctx); err != nil {
			return nil, storeErr("open session: register the session node "+b.SessionNode(), err)
		}
		_, err = b.client.Raw().Write("/v1/session/create", body, &out, b.write(ctx))
	}
	if err != nil {
		return nil, storeErr("open session", err)
	}
	s := &session{b: b, id: out.ID, ttl: ttl, lockDelay: lockDelay}
	b.register(s)
	return s, nil
}

// check fails on a closed backend or an invalid name.
func (b *Backend) check(name string) error {
	if b.life.Err() != nil {
		return errClosed
	}
	return b.ValidateName(name)
}

// query returns the read options of every request: the configured token,
// datacenter, namespace and partition, bound to ctx.
func (b *Backend) query(ctx context.Context) *api.QueryOptions {
	q := &api.QueryOptions{Token: b.s.token, Datacenter: b.s.datacenter, Namespace: b.s.namespace, Partition: b.s.partition}
	return q.WithContext(ctx)
}

// consistent is query with Consul's consistent mode: the Raft leader
// confirms its leadership and has applied every committed write before it
// answers. Decisions that drop state (release by token, "taken") use it, so
// that a server whose state lags behind (just elected, or deposed without
// knowing) cannot make them on stale data.
func (b *Backend) consistent(ctx context.Context) *api.QueryOptions {
	q := b.query(ctx)
	q.RequireConsistent = true
	return q
}

// write is query's counterpart for writes.
func (b *Backend) write(ctx context.Context) *api.WriteOptions {
	w := &api.WriteOptions{Token: b.s.token, Datacenter: b.s.datacenter, Namespace: b.s.namespace, Partition: b.s.partition}
	return w.WithContext(ctx)
}

// kvOp returns a transaction operation on the election key name.
func (b *Backend) kvOp(verb api.KVOp, name string) *api.TxnOp {
	return &api.TxnOp{KV: &api.KVTxnOp{Verb: verb, Key: b.Key(name), Namespace: b.s.namespace, Partition: b.s.partition}}
}
