package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

// maxKeysPerScript bounds the keys one read or check script touches, so
// that a huge session does not block the server in one long script; more
// go in several scripts of one pipeline (still one round trip).
const maxKeysPerScript = 1024

// renew extends the session key by its TTL: one script (renewScript),
// whose PEXPIRE fails if the key is already gone (then every claim is
// lost: [election.ErrSessionExpired]), and which returns the claims
// another session released by token (the lost set, normally absent).
// Claims are not touched: they are valid while the session key lives. A
// claim taken away otherwise (its key deleted or evicted, then claimed by
// another session) is known from the shared subscription (local.go); it is
// reported in a *[election.NotOwnerError], as is a claim this session never
// made (another token or fence): both without I/O. While that subscription is not in sync
// (before its first confirmation, after a disconnection, until the re-read
// that follows), announcements may be missing, so the same pipeline also
// checks every claim's owner token in the store (verifyScript): O(claims)
// only then. With Config.WaitReplicas a WAIT follows in the same pipeline.
func (s *session) renew(ctx context.Context, claims []election.Claim) error {
	check := len(claims) > 0 && !s.hub.isSynced()
	sent := time.Now()
	alive, failed, err := s.renewPipelined(ctx, claims, check, true)
	if isNoScript(err) {
		alive, failed, err = s.renewPipelined(ctx, claims, check, false)
	}
	if err != nil {
		return storeError("renew", singleName(claims), err)
	}
	if !alive {
		s.hub.dropSession(s.id)
		return fmt.Errorf("redis: renew: %w: session key gone", election.ErrSessionExpired)
	}
	s.hub.sessionRenewed(s.id, sent.Add(s.ttl))
	for _, c := range s.hub.notHeld(s.id, claims) {
		if !contains(failed, c) {
			failed = append(failed, c)
		}
	}
	if len(failed) > 0 {
		return &election.NotOwnerError{Claims: failed}
	}
	return nil
}

func contains(claims []election.Claim, c election.Claim) bool {
	for _, other := range claims {
		if other == c {
			return true
		}
	}
	return false
}

// renewPipelined sends the renewal script, with check the owner
// check of every claim in scripts of up to maxKeysPerScript keys (by
// digest, or whole after the server lost its script cache), and WAIT, in
// one pipeline. Renewing and checking are idempotent, so a retry after
// NOSCRIPT is safe.
func (s *session) renewPipelined(ctx context.Context, claims []election.Claim, check, useSHA bool) (alive bool, failed []election.Claim, err error) {
	b := s.backend
	pipe := b.client.Pipeline()
	var renewal *goredis.Cmd
	if useSHA {
		renewal = renewScript.EvalSha(ctx, pipe, []string{s.key, b.keys.lost(s.id)}, s.ttl.Milliseconds())
	} else {
		renewal = renewScript.Eval(ctx, pipe, []string{s.key, b.keys.lost(s.id)}, s.ttl.Milliseconds())
	}
	var batches [][]election.Claim
	var cmds []*goredis.Cmd
	if check {
		for start := 0; start < len(claims); start += maxKeysPerScript {
			batch := claims[start:min(start+maxKeysPerScript, len(claims))]
			keys := make([]string, len(batch))
			args := make([]any, len(batch))
			for j, c := range batch {
				keys[j] = b.keys.claim(c.Name)
				args[j] = tokenNeedle(c.Token)
			}
			batches = append(batches, batch)
			if useSHA {
				cmds = append(cmds, verifyScript.EvalSha(ctx, pipe, keys, args...))
			} else {
				cmds = append(cmds, verifyScript.Eval(ctx, pipe, keys, args...))
			}
		}
	}
	var wait *goredis.Cmd
	if b.cfg.WaitReplicas > 0 {
		wait = pipe.Do(ctx, "WAIT", b.cfg.WaitReplicas, b.cfg.WaitTimeout.Milliseconds())
	}
	_, _ = pipe.Exec(ctx) // errors are on the commands

	reply, err := renewal.Slice()
	if err != nil {
		return false, nil, err
	}
	if len(reply) == 0 || reply[0] != int64(1) {
		return false, nil, nil
	}
	released := make(map[string]bool, len(reply)-1)
	for _, m := range reply[1:] {
		if member, ok := m.(string); ok {
			released[member] = true
		}
	}
	if len(released) > 0 {
		for _, c := range claims {
			if released[fmt.Sprintf("%d:%s", c.Fence, c.Name)] {
				failed = append(failed, c)
			}
		}
	}
	for i, cmd := range cmds {
		indexes, err := cmd.Int64Slice()
		if err != nil {
			return false, nil, err
		}
		for _, n := range indexes {
			if n < 1 || int(n) > len(batches[i]) {
				return false, nil, fmt.Errorf("redis: check script returned index %d for a batch of %d", n, len(batches[i]))
			}
			if c := batches[i][n-1]; !contains(failed, c) {
				failed = append(failed, c)
			}
		}
	}
	if wait != nil {
		acked, err := wait.Int64()
		if err != nil {
			return false, nil, err
		}
		if acked < int64(b.cfg.WaitReplicas) {
			return false, nil, fmt.Errorf("%w: %d of %d within %v", errWaitShort, acked, b.cfg.WaitReplicas, b.cfg.WaitTimeout)
		}
	}
	return true, failed, nil
}
