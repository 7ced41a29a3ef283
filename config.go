package election

import (
	"errors"
	"fmt"
	"math/rand/v2"
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

	// RenewInterval is the mean time between renewals, counted from the
	// send time of the last successful one. Default TTL/3.
	RenewInterval time.Duration

	// RenewJitter is the fraction of RenewInterval by which each renewal is
	// moved earlier or later at random, so that many processes do not renew
	// on the same millisecond. Default 0.1; range [0, 0.5].
	RenewJitter float64

	// RenewTimeout bounds one renewal: one that has no answer by then
	// counts as failed (the leader becomes [StateUncertain]) and is retried
	// after a backoff of at most RenewInterval/2. Default RenewInterval/2.
	//
	// The schedule must leave room for one retry before the deadline:
	// RenewInterval×(1+RenewJitter) + 2×RenewTimeout + RetryMin ≤
	// TTL − DriftMargin. Then a leader keeps its term through any store or
	// network outage shorter than
	// TTL − DriftMargin − RenewInterval×(1+RenewJitter) − RenewTimeout
	// (while the store answers in less than RenewInterval/2).
	RenewTimeout time.Duration

	// OpTimeout bounds each claim and each release attempt. Default
	// RenewInterval/2; it must be below TTL − DriftMargin. A Stop or Close
	// whose context has already ended gives the handlers it cancels up to
	// OpTimeout to return, then makes one release attempt of at most
	// OpTimeout.
	OpTimeout time.Duration

	// DriftMargin is subtracted from the local deadline to absorb a clock
	// running at a different rate from the store's and timer latency.
	// Default TTL/10. Range (0, TTL/2]. The leader's context is cancelled at
	// (send time of the last successful renewal) + TTL − DriftMargin on the
	// local monotonic clock. Handlers still running DriftMargin/2 after
	// that are reported ([EventHandlerOverrun]).
	DriftMargin time.Duration

	// RetryMin and RetryMax bound the exponential backoff between failed
	// claims, renewals and watches. Defaults min(50ms, TTL/20) and TTL/4.
	// RetryMin must be positive and not greater than RetryMax.
	RetryMin, RetryMax time.Duration

	// Clock is the time source. Default: the system clock (monotonic).
	// Tests inject a fake to make timing exact.
	Clock Clock

	// Rand is the source of every random choice the elector makes:
	// renewal jitter, backoff, owner tokens and default candidate IDs.
	// Default: a ChaCha8 generator seeded from crypto/rand. Tests inject a
	// seeded source (rand.NewPCG) so that one seed replays one schedule; do
	// not do that in production, where owner tokens must be unguessable.
	Rand rand.Source

	// ID is the default [CandidateConfig.ID] of this elector's candidates,
	// and Metadata their default metadata (a candidate's own entries win).
	// [Settings.Open] fills both from Settings.ID and Settings.Metadata.
	// An ID must be unique per process (a pod name, host and pid): two
	// processes with one ID look like one to observers, and a candidate
	// that resigned waits out the other's term as if it were its own.
	ID       string
	Metadata map[string]string

	// OnEvent, if set, receives every event of the elector and its
	// candidates, in the order they happened, from a goroutine of the
	// elector's that runs while events are queued: it never delays the
	// election, and it may call Stop, Resign or Close. A slow OnEvent lets
	// events queue up in memory; metrics and logging adapters hang off it.
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
	if c.RenewTimeout == 0 {
		c.RenewTimeout = c.RenewInterval / 2
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = c.RenewInterval / 2
	}
	if c.DriftMargin == 0 {
		c.DriftMargin = c.TTL / 10
	}
	if c.RetryMin == 0 {
		c.RetryMin = min(50*time.Millisecond, c.TTL/20)
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
	errs := validateTTL("TTL", "DriftMargin", c.TTL, c.DriftMargin, lim)
	if err := validateID("ID", c.ID); err != nil {
		errs = append(errs, err)
	}
	if c.RenewInterval <= 0 {
		errs = append(errs, invalid("RenewInterval", "%v is not positive", c.RenewInterval))
	}
	if c.RenewJitter < 0 || c.RenewJitter > 0.5 {
		errs = append(errs, invalid("RenewJitter", "%v is outside [0, 0.5]", c.RenewJitter))
	}
	if c.RenewTimeout <= 0 {
		errs = append(errs, invalid("RenewTimeout", "%v is not positive", c.RenewTimeout))
	}
	if c.OpTimeout <= 0 {
		errs = append(errs, invalid("OpTimeout", "%v is not positive", c.OpTimeout))
	} else if c.OpTimeout >= c.TTL-c.DriftMargin {
		errs = append(errs, invalid("OpTimeout", "%v is not below TTL − DriftMargin = %v: a claim could outlast its term",
			c.OpTimeout, c.TTL-c.DriftMargin))
	}
	if c.RetryMin <= 0 {
		errs = append(errs, invalid("RetryMin", "%v is not positive", c.RetryMin))
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, invalid("RetryMax", "%v is below RetryMin %v", c.RetryMax, c.RetryMin))
	}
	if len(errs) == 0 {
		if err := c.checkSchedule(c.TTL); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkSchedule checks that renewals leave room for one retry before the
// deadline, with ttl the TTL asked for or granted.
func (c Config) checkSchedule(ttl time.Duration) error {
	firstTry := time.Duration(float64(c.RenewInterval) * (1 + c.RenewJitter))
	need := firstTry + 2*c.RenewTimeout + c.RetryMin
	if need <= ttl-c.DriftMargin {
		return nil
	}
	return invalid("RenewInterval, RenewJitter, RenewTimeout, RetryMin",
		"the renewal schedule leaves no retry before the deadline: RenewInterval×(1+RenewJitter) + 2×RenewTimeout + RetryMin = "+
			"%v×%.2f + 2×%v + %v = %v, more than TTL − DriftMargin = %v − %v = %v; shorten RenewInterval or RenewTimeout, or lengthen TTL",
		c.RenewInterval, 1+c.RenewJitter, c.RenewTimeout, c.RetryMin, need, ttl, c.DriftMargin, ttl-c.DriftMargin)
}

// checkGranted checks the TTL a store granted against the schedule.
func (c Config) checkGranted(granted time.Duration) error {
	if granted >= c.TTL {
		return nil
	}
	if err := c.checkSchedule(granted); err != nil {
		return fmt.Errorf("election: the store granted TTL %v instead of %v: %w", granted, c.TTL, err)
	}
	return nil
}

// validateTTL is the one check of a TTL and its drift margin against a
// backend's limits, for electors and leases alike; ttlField and driftField
// name them in errors.
func validateTTL(ttlField, driftField string, ttl, drift time.Duration, lim Limits) []error {
	var errs []error
	minTTL := max(lim.MinTTL, time.Millisecond)
	switch {
	case ttl <= 0:
		errs = append(errs, invalid(ttlField, "%v is not positive", ttl))
	case ttl < minTTL:
		errs = append(errs, invalid(ttlField, "%v is below the backend's minimum %v", ttl, minTTL))
	case lim.MaxTTL > 0 && ttl > lim.MaxTTL:
		errs = append(errs, invalid(ttlField, "%v is above the backend's maximum %v", ttl, lim.MaxTTL))
	}
	if err := checkGranularity(ttlField, ttl, lim); err != nil {
		errs = append(errs, err)
	}
	if drift <= 0 || drift > ttl/2 {
		errs = append(errs, invalid(driftField, "%v is outside (0, %s/2=%v]", drift, ttlField, ttl/2))
	}
	return errs
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
	// EventBuffer is the capacity of the [Candidate.Events] channel, made
	// by the first call to Events. Default 64. When it is full the oldest
	// event is dropped.
	EventBuffer int
}

// validateID checks a candidate ID: at most 256 bytes of printable UTF-8.
// Empty means "the default".
func validateID(field, id string) error {
	if len(id) > 256 {
		return invalid(field, "%d bytes, longer than 256", len(id))
	}
	for _, r := range id {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return invalid(field, "%q contains an invalid or control character", id)
		}
	}
	return nil
}

func (c CandidateConfig) validate(b Backend) error {
	var errs []error
	if err := ValidateName(b, c.Name); err != nil {
		errs = append(errs, err)
	}
	if err := validateID("ID", c.ID); err != nil {
		errs = append(errs, err)
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
