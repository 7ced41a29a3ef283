package redis

import (
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Defaults that replace zero fields of [Config].
const (
	// DefaultPrefix is the key prefix when Config.Prefix is empty.
	DefaultPrefix = "election"
	// DefaultSubscriptionCheck is Config.SubscriptionCheck when zero.
	DefaultSubscriptionCheck = time.Second
)

// Config configures a [Backend]. The zero value of every field selects its
// default; [New] validates the result once and reports every problem at once.
type Config struct {
	// Prefix namespaces every key and channel. Default DefaultPrefix
	// ("election"). Any string is allowed: it is escaped, so that two
	// (prefix, name) pairs never share a key (prefix "a" with name "b:x" and
	// prefix "a:b" with name "x" stay apart). Keys of the election name
	// start with "{" + escaped prefix + ":", which is what an ACL key
	// pattern should allow (for example ~{myapp:* and &{myapp:*).
	Prefix string

	// Quarantine is how long after redis-server started claims are
	// refused, so that a leader a restarted (empty, or reloaded from a stale
	// snapshot) server forgot has passed its own deadline before anyone
	// else is elected. Zero (the default) uses the TTL of the claiming
	// session; set it to the largest TTL any candidate of this prefix uses
	// when candidates differ. Must not be negative.
	Quarantine time.Duration

	// NoQuarantine disables the quarantine: after Redis restarts empty, a
	// new leader may be elected while the old one still acts, for up to one
	// TTL. It makes claims on a just-started server immediate; use it only
	// where overlapping leaders are harmless. Conflicts with a non-zero
	// Quarantine.
	NoQuarantine bool

	// WaitReplicas, when positive, makes every successful claim and renewal
	// wait (Redis WAIT) until that many replicas acknowledged it, for at
	// most WaitTimeout. Fewer acknowledgements return an error wrapping
	// [election.ErrUnavailable]; the write stays applied on the primary.
	// It needs a single-primary client (*goredis.Client, also the Sentinel
	// failover client): WAIT has no key a Cluster client could route.
	// Default 0 (no WAIT). Must not be negative.
	WaitReplicas int

	// WaitTimeout bounds each WAIT. Required (positive) when WaitReplicas
	// is set; must be zero otherwise. It adds up to this much latency to
	// claims and renewals, so keep it well below the renew interval.
	WaitTimeout time.Duration

	// SubscriptionCheck is how long the shared watch subscription may stay
	// silent before it is pinged; a ping unanswered for as long again marks
	// the subscription broken, and every watcher gets an error event (the
	// core watches again). Default DefaultSubscriptionCheck (1s). Must not
	// be negative.
	SubscriptionCheck time.Duration
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.SubscriptionCheck == 0 {
		c.SubscriptionCheck = DefaultSubscriptionCheck
	}
	return c
}

// validate reports every problem of c (after defaults) for client at once.
func (c Config) validate(client goredis.UniversalClient) error {
	var errs []error
	if client == nil {
		errs = append(errs, invalid("client", "is nil"))
	}
	if _, ring := client.(*goredis.Ring); ring {
		errs = append(errs, invalid("client",
			"*redis.Ring is not supported: its shards share no pub/sub channel (use a Cluster)"))
	}
	if c.WaitReplicas > 0 && client != nil && !isSinglePrimary(client) {
		errs = append(errs, invalid("WaitReplicas", "needs a single-primary *redis.Client, got %T", client))
	}
	return errors.Join(append(errs, c.validateFields())...)
}

// validateFields reports every problem of c's own fields at once.
func (c Config) validateFields() error {
	var errs []error
	if c.Quarantine < 0 {
		errs = append(errs, invalid("Quarantine", "%v is negative", c.Quarantine))
	}
	if c.NoQuarantine && c.Quarantine != 0 {
		errs = append(errs, invalid("Quarantine", "%v is set together with NoQuarantine", c.Quarantine))
	}
	if c.WaitReplicas < 0 {
		errs = append(errs, invalid("WaitReplicas", "%d is negative", c.WaitReplicas))
	}
	switch {
	case c.WaitReplicas > 0 && c.WaitTimeout <= 0:
		errs = append(errs, invalid("WaitTimeout", "%v must be positive when WaitReplicas is set", c.WaitTimeout))
	case c.WaitReplicas <= 0 && c.WaitTimeout != 0:
		errs = append(errs, invalid("WaitTimeout", "%v is set without WaitReplicas", c.WaitTimeout))
	}
	if c.SubscriptionCheck < 0 {
		errs = append(errs, invalid("SubscriptionCheck", "%v is negative", c.SubscriptionCheck))
	}
	return errors.Join(errs...)
}

// isSinglePrimary reports whether every key of client lives on one server,
// so that one script may touch keys of many elections.
func isSinglePrimary(client goredis.UniversalClient) bool {
	_, ok := client.(*goredis.Client)
	return ok
}
