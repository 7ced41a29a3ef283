package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

var _ election.Session = (*session)(nil)

// session is an [election.Session] on Redis. Redis has no server-side
// session: it holds the TTL every claim and renewal uses, and a closed flag.
type session struct {
	backend *Backend
	ttl     time.Duration

	mu     sync.Mutex
	closed bool
}

// TTL returns the TTL of every claim and renewal: the one asked for.
func (s *session) TTL() time.Duration { return s.ttl }

// Close forgets the session. Its claims stay until they expire or are
// released; later calls return [election.ErrSessionExpired]. Close does no
// I/O and is idempotent.
func (s *session) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// quarantine is the quarantine this session's claims apply.
func (s *session) quarantine() time.Duration {
	switch {
	case s.backend.cfg.NoQuarantine:
		return 0
	case s.backend.cfg.Quarantine > 0:
		return s.backend.cfg.Quarantine
	default:
		return s.ttl
	}
}

// Claim runs the claim script: SET NX PX with a fence from the server clock,
// refused during a quarantine, published on the election's channel.
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	if s.isClosed() {
		return election.Claim{}, fmt.Errorf("redis: claim %q: %w", req.Name, election.ErrSessionExpired)
	}
	stored, published, err := encodeClaim(req, s.ttl)
	if err != nil {
		return election.Claim{}, invalid("metadata", "cannot be encoded: %v", err)
	}
	k := keysFor(s.backend.cfg.Prefix, req.Name)
	keys := []string{k.leader, k.meta}
	args := []any{stored, published, s.ttl.Milliseconds(), s.quarantine().Microseconds(), k.channel}

	reply, err := s.backend.runWithWait(ctx, claimScript, keys, args)
	if err != nil {
		return election.Claim{}, storeError("claim", req.Name, err)
	}
	fields, err := reply.Slice()
	if err != nil || len(fields) < 2 {
		return election.Claim{}, storeError("claim", req.Name, fmt.Errorf("unexpected reply from claim script: %v", err))
	}
	kind, _ := fields[0].(string)
	switch kind {
	case "ok":
		fence, err := strconv.ParseUint(fmt.Sprint(fields[1]), 10, 64)
		if err != nil {
			return election.Claim{}, storeError("claim", req.Name, err)
		}
		if err := reply.waitErr(); err != nil {
			return election.Claim{}, fmt.Errorf("redis: claim %q: %w: %w", req.Name, election.ErrUnavailable, err)
		}
		return election.Claim{Name: req.Name, Token: req.Token, Fence: fence}, nil
	case "taken":
		value, _ := fields[1].(string)
		var ms int64
		if len(fields) > 2 {
			ms, _ = fields[2].(int64)
		}
		rec, err := decodeRecord(req.Name, value)
		if err != nil {
			return election.Claim{}, storeError("claim", req.Name, err)
		}
		return election.Claim{}, &election.TakenError{Holder: rec.leader(req.Name), ExpiresIn: pttl(ms)}
	case "quarantine":
		left, err := strconv.ParseInt(fmt.Sprint(fields[1]), 10, 64)
		if err != nil {
			return election.Claim{}, storeError("claim", req.Name, err)
		}
		return election.Claim{}, &election.TakenError{
			Holder:    election.Leader{Election: req.Name},
			ExpiresIn: time.Duration(left) * time.Microsecond,
		}
	default:
		return election.Claim{}, storeError("claim", req.Name, fmt.Errorf("unexpected reply %q from claim script", kind))
	}
}

// Release runs the release script: compare the owner token, DEL, publish.
func (s *session) Release(ctx context.Context, c election.Claim) error {
	k := keysFor(s.backend.cfg.Prefix, c.Name)
	released, err := releaseScript.Run(ctx, s.backend.client, []string{k.leader}, tokenNeedle(c.Token), k.channel).Int64()
	if err != nil {
		return storeError("release", c.Name, err)
	}
	if released == 0 {
		return fmt.Errorf("redis: release %q: %w", c.Name, election.ErrNotOwner)
	}
	return nil
}

// Renew extends every claim whose owner token the server still holds; see
// renew.go for how the claims are batched.
func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	if s.isClosed() {
		return fmt.Errorf("redis: renew: %w", election.ErrSessionExpired)
	}
	if len(claims) == 0 {
		return nil
	}
	failed, err := s.backend.renew(ctx, claims, s.ttl)
	if err != nil {
		return storeError("renew", singleName(claims), err)
	}
	if len(failed) > 0 {
		return &election.NotOwnerError{Claims: failed}
	}
	return nil
}

// singleName names the election in an error when only one is involved.
func singleName(claims []election.Claim) string {
	if len(claims) == 1 {
		return claims[0].Name
	}
	return ""
}

// errWaitShort is the native cause when fewer replicas than
// Config.WaitReplicas acknowledged a write in time.
var errWaitShort = errors.New("redis: too few replicas acknowledged the write")

// scriptReply is a script's reply plus, with Config.WaitReplicas, the number
// of replicas that acknowledged it.
type scriptReply struct {
	*goredis.Cmd
	wanted, acked int64
	timeout       time.Duration
}

// waitErr reports a short WAIT; nil without Config.WaitReplicas.
func (r scriptReply) waitErr() error {
	if r.acked >= r.wanted {
		return nil
	}
	return fmt.Errorf("%w: %d of %d within %v", errWaitShort, r.acked, r.wanted, r.timeout)
}

// runWithWait runs script once (EVALSHA, then EVAL if the server lost its
// script cache) and, with Config.WaitReplicas, WAIT on the same connection
// in the same round trip.
func (b *Backend) runWithWait(ctx context.Context, script *goredis.Script, keys []string, args []any) (scriptReply, error) {
	if b.cfg.WaitReplicas == 0 {
		cmd := script.Run(ctx, b.client, keys, args...)
		return scriptReply{Cmd: cmd}, cmd.Err()
	}
	reply, err := b.evalAndWait(ctx, script, true, keys, args)
	if isNoScript(err) {
		reply, err = b.evalAndWait(ctx, script, false, keys, args)
	}
	return reply, err
}

// evalAndWait pipelines the script and WAIT: a pipeline of a single-primary
// client uses one connection, which WAIT needs.
func (b *Backend) evalAndWait(ctx context.Context, script *goredis.Script, useSHA bool, keys []string, args []any) (scriptReply, error) {
	pipe := b.client.Pipeline()
	var cmd *goredis.Cmd
	if useSHA {
		cmd = script.EvalSha(ctx, pipe, keys, args...)
	} else {
		cmd = script.Eval(ctx, pipe, keys, args...)
	}
	wait := pipe.Do(ctx, "WAIT", b.cfg.WaitReplicas, b.cfg.WaitTimeout.Milliseconds())
	_, _ = pipe.Exec(ctx) // errors are on the commands
	if err := cmd.Err(); err != nil {
		return scriptReply{}, err
	}
	acked, err := wait.Int64()
	if err != nil {
		return scriptReply{}, err
	}
	return scriptReply{Cmd: cmd, wanted: int64(b.cfg.WaitReplicas), acked: acked, timeout: b.cfg.WaitTimeout}, nil
}
