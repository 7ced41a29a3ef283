package election

import (
	"errors"
	"time"
	"unicode"
	"unicode/utf8"
)

// Defaults applied by [Config.withDefaults] to zero fields.
const (
	// DefaultTTL is the claim TTL when Config.TTL is zero.
	DefaultTTL = 10 * time.Second
	// DefaultMaxNameLen is the longest election name when the backend's
	// Limits do not set one.
	DefaultMaxNameLen = 256
)

// Config configures an [Elector]. The zero value of every field selects its
// default; [New] validates the result once and reports every problem at
// once. No value is ever silently replaced: a TTL the store cannot grant is
// an error, not a clamp.
type Config struct {
	// TTL is how long the store keeps a claim after its last renewal.
	// Default DefaultTTL (10s). It must be within the backend's Limits.
	// Longer TTLs survive longer store or network stalls; shorter ones hand
	// over faster after a crash. If the store grants a different TTL (etcd
	// raises small ones), the granted value is used and reported in events.
	TTL time.Duration

	// RenewInterval is the mean time between renewals. Default TTL/3.
	// It must be less than TTL − DriftMargin, so that at least one renewal
	// can land before the local deadline.
	RenewInterval time.Duration

	// RenewJitter is the fraction of RenewInterval by which each renewal is
	// moved earlier or later at random, so that many processes do not renew
	// on the same millisecond. Default 0.1; range [0, 0.5].
	RenewJitter float64

	// DriftMargin is subtracted from the local deadline to absorb a clock
	// running at a different rate from the store's and timer latency.
	// Default TTL/10. Range (0, TTL/2]. The leader's context is cancelled at
	// (send time of the last successful renewal) + TTL − DriftMargin on the
	// local monotonic clock.
	DriftMargin time.Duration

	// RetryMin and RetryMax bound the exponential backoff between failed
	// claims, renewals and watches. Defaults 50ms and TTL/4. RetryMin must
	// be positive and not greater than RetryMax.
	RetryMin, RetryMax time.Duration

	// Clock is the time source. Default: the system clock (monotonic).
	// Tests inject a fake to make timing exact.
	Clock Clock

	// OnEvent, if set, receives every event of the elector and its
	// candidates synchronously, in order per candidate. It must not block;
	// metrics and logging adapters hang off it.
	OnEvent func(Event)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.TTL / 3
	}
	if c.RenewJitter == 0 {
		c.RenewJitter = 0.1
	}
	if c.DriftMargin == 0 {
		c.DriftMargin = c.TTL / 10
	}
	if c.RetryMin == 0 {
		c.RetryMin = 50 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(c.TTL/4, c.RetryMin)
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	return c
}

// validate reports every problem with c (after defaults) at once.
func (c Config) validate(lim Limits) error {
	var errs []error
	minTTL := lim.MinTTL
	if minTTL <= 0 {
		minTTL = time.Millisecond
	}
	switch {
	case c.TTL < 0:
		errs = append(errs, invalid("TTL", "%v is negative", c.TTL))
	case c.TTL < minTTL:
		errs = append(errs, invalid("TTL", "%v is below the backend's minimum %v", c.TTL, minTTL))
	case lim.MaxTTL > 0 && c.TTL > lim.MaxTTL:
		errs = append(errs, invalid("TTL", "%v is above the backend's maximum %v", c.TTL, lim.MaxTTL))
	}
	if err := checkGranularity("TTL", c.TTL, lim); err != nil {
		errs = append(errs, err)
	}
	if c.DriftMargin <= 0 || c.DriftMargin > c.TTL/2 {
		errs = append(errs, invalid("DriftMargin", "%v is outside (0, TTL/2=%v]", c.DriftMargin, c.TTL/2))
	}
	if c.RenewInterval < 0 {
		errs = append(errs, invalid("RenewInterval", "%v is negative", c.RenewInterval))
	} else if c.RenewInterval >= c.TTL-c.DriftMargin {
		errs = append(errs, invalid("RenewInterval", "%v is not below TTL − DriftMargin = %v: the leader would step down before its first renewal",
			c.RenewInterval, c.TTL-c.DriftMargin))
	}
	if c.RenewJitter < 0 || c.RenewJitter > 0.5 {
		errs = append(errs, invalid("RenewJitter", "%v is outside [0, 0.5]", c.RenewJitter))
	}
	if c.RetryMin <= 0 {
		errs = append(errs, invalid("RetryMin", "%v is not positive", c.RetryMin))
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, invalid("RetryMax", "%v is below RetryMin %v", c.RetryMax, c.RetryMin))
	}
	return errors.Join(errs...)
}

// checkGranularity rejects a positive ttl that is not a whole multiple of
// the backend's TTL unit.
func checkGranularity(field string, ttl time.Duration, lim Limits) error {
	g := lim.TTLGranularity
	if g <= 0 || ttl <= 0 || ttl%g == 0 {
		return nil
	}
	return invalid(field, "%v is not a whole multiple of the backend's TTL unit %v (use %v or %v)",
		ttl, g, ttl.Truncate(g), ttl.Truncate(g)+g)
}

// ValidateName checks an election name against the core's rules and the
// backend's: non-empty, valid UTF-8, no control characters, at most
// Limits.MaxNameLen bytes, and whatever the backend's [NameValidator] adds.
// The error wraps [ErrInvalidArgument].
func ValidateName(b Backend, name string) error {
	maxLen := DefaultMaxNameLen
	if b != nil {
		if n := b.Limits().MaxNameLen; n > 0 {
			maxLen = n
		}
	}
	switch {
	case name == "":
		return invalid("name", "empty")
	case len(name) > maxLen:
		return invalid("name", "%d bytes, longer than the backend's %d", len(name), maxLen)
	case !utf8.ValidString(name):
		return invalid("name", "%q is not valid UTF-8", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return invalid("name", "%q contains control character %U", name, r)
		}
	}
	if v, ok := b.(NameValidator); ok {
		if err := v.ValidateName(name); err != nil {
			return err
		}
	}
	return nil
}

// CandidateConfig configures one [Candidate].
type CandidateConfig struct {
	// Name is the election to campaign in. Required; see [ValidateName].
	Name string
	// ID identifies this candidate to observers; it should be unique among
	// the candidates of the election (hostname and pid, pod name). Default:
	// a random ID. At most 256 bytes, no control characters.
	ID string
	// Metadata is shown to observers with the leader (an address to send
	// leader-only requests to, a version). Copied at construction.
	Metadata map[string]string
	// Handlers run, each in its own goroutine, every time the candidate is
	// elected. More can be added with [Candidate.AddHandlers].
	Handlers []Handler
	// EventBuffer is the capacity of the [Candidate.Events] channel.
	// Default 64. When it is full the oldest event is dropped.
	EventBuffer int
}

func (c CandidateConfig) validate(b Backend) error {
	var errs []error
	if err := ValidateName(b, c.Name); err != nil {
		errs = append(errs, err)
	}
	if len(c.ID) > 256 {
		errs = append(errs, invalid("ID", "%d bytes, longer than 256", len(c.ID)))
	}
	for _, r := range c.ID {
		if unicode.IsControl(r) || r == utf8.RuneError {
			errs = append(errs, invalid("ID", "%q contains an invalid or control character", c.ID))
			break
		}
	}
	for i, h := range c.Handlers {
		if h == nil {
			errs = append(errs, invalid("Handlers", "handler %d is nil", i))
		}
	}
	if c.EventBuffer < 0 {
		errs = append(errs, invalid("EventBuffer", "%d is negative", c.EventBuffer))
	}
	return errors.Join(errs...)
}
