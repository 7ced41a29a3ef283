package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

// maxKeysPerScript bounds the claims one renew script touches, so that a
// huge session does not block the server in one long script; larger
// sessions send several scripts in one pipeline (still one round trip).
const maxKeysPerScript = 1024

// renew extends claims by ttl and returns those the server no longer holds
// for their token. On a single primary the claims go in scripts of up to
// maxKeysPerScript keys; on a Cluster each claim is its own script (one
// script may touch only one hash slot), all in one pipeline, which go-redis
// sends to every node in parallel. With Config.WaitReplicas a WAIT follows
// in the same pipeline.
func (b *Backend) renew(ctx context.Context, claims []election.Claim, ttl time.Duration) ([]election.Claim, error) {
	batches := b.renewBatches(claims)
	failed, err := b.renewPipelined(ctx, batches, ttl, true)
	if isNoScript(err) {
		failed, err = b.renewPipelined(ctx, batches, ttl, false)
	}
	return failed, err
}

// renewBatches splits claims into the groups one script each renews.
func (b *Backend) renewBatches(claims []election.Claim) [][]election.Claim {
	size := maxKeysPerScript
	if !b.singlePrimary {
		size = 1
	}
	batches := make([][]election.Claim, 0, (len(claims)+size-1)/size)
	for start := 0; start < len(claims); start += size {
		batches = append(batches, claims[start:min(start+size, len(claims))])
	}
	return batches
}

// renewPipelined sends one renew script per batch in one pipeline: by digest
// (EVALSHA) or, after the server lost its script cache, whole (EVAL).
// Renewing is idempotent, so a retry after NOSCRIPT is safe.
func (b *Backend) renewPipelined(ctx context.Context, batches [][]election.Claim, ttl time.Duration, useSHA bool) ([]election.Claim, error) {
	pipe := b.client.Pipeline()
	cmds := make([]*goredis.Cmd, len(batches))
	for i, batch := range batches {
		keys := make([]string, len(batch))
		args := make([]any, 0, len(batch)+1)
		args = append(args, ttl.Milliseconds())
		for j, c := range batch {
			keys[j] = keysFor(b.cfg.Prefix, c.Name).leader
			args = append(args, tokenNeedle(c.Token))
		}
		if useSHA {
			cmds[i] = renewScript.EvalSha(ctx, pipe, keys, args...)
		} else {
			cmds[i] = renewScript.Eval(ctx, pipe, keys, args...)
		}
	}
	var wait *goredis.Cmd
	if b.cfg.WaitReplicas > 0 {
		wait = pipe.Do(ctx, "WAIT", b.cfg.WaitReplicas, b.cfg.WaitTimeout.Milliseconds())
	}
	_, _ = pipe.Exec(ctx) // errors are on the commands

	var failed []election.Claim
	for i, cmd := range cmds {
		indexes, err := cmd.Int64Slice()
		if err != nil {
			return nil, err
		}
		for _, n := range indexes {
			if n < 1 || int(n) > len(batches[i]) {
				return nil, fmt.Errorf("redis: renew script returned index %d for a batch of %d", n, len(batches[i]))
			}
			failed = append(failed, batches[i][n-1])
		}
	}
	if wait != nil {
		acked, err := wait.Int64()
		if err != nil {
			return nil, err
		}
		if acked < int64(b.cfg.WaitReplicas) {
			return nil, fmt.Errorf("%w: %d of %d within %v", errWaitShort, acked, b.cfg.WaitReplicas, b.cfg.WaitTimeout)
		}
	}
	return failed, nil
}
