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
	"github.com/electionkit/election/internal/recordfmt"
)

var _ election.Session = (*session)(nil)

// session is an [election.Session] on Redis: a key with a PX expiry
// (keys.session) that every claim made through it names. A claim is valid
// only while its session key exists, so renewing the session is one
// PEXPIRE whatever the number of claims.
type session struct {
	backend *Backend
	hub     *hub
	id      string // random; names the session key
	key     string
	ttl     time.Duration

	mu     sync.Mutex
	closed bool
}

// TTL returns the TTL of the session key, the one asked for.
func (s *session) TTL() time.Duration { return s.ttl }

// Close deletes the session key, which makes every claim still made
// through it vacant at once, and announces that on the prefix's channel so
// that watchers see the vacancies. Later calls to the session return
// [election.ErrSessionExpired]. Close is idempotent; when the server
// cannot be reached it returns an error wrapping [election.ErrUnavailable]
// and the key expires at its TTL.
func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.hub.dropSession(s.id)
	err := endSessionScript.Run(ctx, s.backend.client, []string{s.key, s.backend.keys.lost(s.id)}, s.backend.keys.channel, encodeSessionEnd(s.id)).Err()
	if err != nil {
		return storeError("close session", "", err)
	}
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

// Claim runs the claim script: the election is taken if it has no claim
// or its claim's session key is gone; the fence comes from the server
// clock; claims are refused during a quarantine; the new term is published
// on the prefix's channel.
func (s *session) Claim(ctx context.Context, req election.ClaimRequest) (election.Claim, error) {
	if s.isClosed() {
		return election.Claim{}, fmt.Errorf("redis: claim %q: %w", req.Name, election.ErrSessionExpired)
	}
	stored, published, err := encodeClaim(req, s.id, s.ttl.Milliseconds())
	if err != nil {
		return election.Claim{}, invalid("metadata", "cannot be encoded: %v", err)
	}
	k := s.backend.keys
	keys := []string{k.claim(req.Name), k.fences, s.key}
	args := []any{stored, published, s.quarantine().Microseconds(), k.channel, k.sessionPrefix,
		req.Name, tokenNeedle(req.Token), versionPrefix, strconv.FormatUint(s.backend.fenceFloor.Load(), 10)}

	reply, err := s.backend.runWithWait(ctx, claimScript, keys, args)
	if err != nil {
		return election.Claim{}, storeError("claim", req.Name, err)
	}
	fields, err := reply.Slice()
	if err != nil || len(fields) < 1 {
		return election.Claim{}, storeError("claim", req.Name, fmt.Errorf("unexpected reply from claim script: %v", err))
	}
	kind, _ := fields[0].(string)
	switch {
	case kind == "ok" && len(fields) > 1:
		fence, err := strconv.ParseUint(fmt.Sprint(fields[1]), 10, 64)
		if err != nil {
			return election.Claim{}, storeError("claim", req.Name, err)
		}
		s.backend.noteFence(fence)
		s.hub.addLocal(req.Name, s.id, req.Token, fence)
		if err := reply.waitErr(); err != nil {
			return election.Claim{}, fmt.Errorf("redis: claim %q: %w: %w", req.Name, election.ErrUnavailable, err)
		}
		return election.Claim{Name: req.Name, Token: req.Token, Fence: fence}, nil
	case kind == "taken" && len(fields) > 1:
		value, _ := fields[1].(string)
		rec, err := decodeClaim(req.Name, keys[0], value)
		if err != nil {
			return election.Claim{}, s.heldByUnknown(req.Name, err)
		}
		s.backend.noteFence(rec.Fence)
		// No ExpiresIn: the holder's expiry is reported by the watch
		// (holders.go), so a waiting candidate needs no timer of its own.
		return election.Claim{}, &election.TakenError{Holder: rec.leader(req.Name)}
	case kind == "foreign":
		return election.Claim{}, s.heldByUnknown(req.Name,
			fmt.Errorf("redis: election %q: key %q: %w: not a claim record", req.Name, keys[0], recordfmt.ErrNotARecord))
	case kind == "nosession":
		return election.Claim{}, fmt.Errorf("redis: claim %q: %w: session key gone", req.Name, election.ErrSessionExpired)
	case kind == "quarantine" && len(fields) > 1:
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

// heldByUnknown is the error of a claim refused because the election's key
// holds a value that is not a claim record: a *TakenError with no holder
// (the election is never vacant to this package) that also wraps cause,
// which names the key and never quotes the value.
func (s *session) heldByUnknown(name string, cause error) error {
	return fmt.Errorf("redis: claim %q: held by an unknown writer: %w: %w", name, cause,
		&election.TakenError{Holder: election.Leader{Election: name}})
}

// Release runs the release script: compare the owner token, DEL, publish.
func (s *session) Release(ctx context.Context, c election.Claim) error {
	k := s.backend.keys
	released, err := releaseScript.Run(ctx, s.backend.client, []string{k.claim(c.Name), k.fences},
		tokenNeedle(c.Token), k.channel, jsonString(c.Name), versionPrefix, c.Name, s.id, k.sessionPrefix, k.lostPrefix).Int64()
	if err != nil {
		return storeError("release", c.Name, err)
	}
	s.hub.removeLocal(c.Name, c.Token, c.Fence)
	if released == 0 {
		return fmt.Errorf("redis: release %q: %w", c.Name, election.ErrNotOwner)
	}
	return nil
}

// Renew extends the session key; see renew.go.
func (s *session) Renew(ctx context.Context, claims []election.Claim) error {
	if s.isClosed() {
		return fmt.Errorf("redis: renew: %w", election.ErrSessionExpired)
	}
	return s.renew(ctx, claims)
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
