package election

import (
	"context"
	"sync"
)

// claimBatch gathers the claims made through one session at the same time
// for a [ClaimBatcher]: the first claim runs a batch of its own; claims
// that arrive while a batch is in flight queue, and the running claim sends
// them in the next batch, until the queue is empty. No goroutine is
// started: the claims wait on channels for the one that runs the batches.
type claimBatch struct {
	mu      sync.Mutex
	queue   []*batchedClaim
	running bool
}

type batchedClaim struct {
	req   ClaimRequest
	claim Claim
	err   error
	done  chan struct{}
}

// claim makes req through b, in a batch with the claims made meanwhile.
// Each batch is bounded by OpTimeout, whichever claim runs it.
func (e *Elector) claimBatched(b *claimBatch, cb ClaimBatcher, req ClaimRequest) (Claim, error) {
	me := &batchedClaim{req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, me)
	if b.running {
		b.mu.Unlock()
		<-me.done
		return me.claim, me.err
	}
	b.running = true
	for {
		batch := b.takeLocked(max(cb.MaxClaimBatch(), 1))
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			break
		}
		b.mu.Unlock()
		reqs := make([]ClaimRequest, len(batch))
		for i, c := range batch {
			reqs[i] = c.req
		}
		ctx, cancel := context.WithTimeout(e.life, e.cfg.OpTimeout)
		claims, errs := cb.ClaimBatch(ctx, reqs)
		cancel()
		for i, c := range batch {
			if i < len(claims) {
				c.claim = claims[i]
			}
			if i < len(errs) {
				c.err = errs[i]
			}
			close(c.done)
		}
		b.mu.Lock()
	}
	<-me.done
	return me.claim, me.err
}

// takeLocked removes and returns up to n queued claims, of distinct names
// (a transaction cannot take one name twice), in their order.
func (b *claimBatch) takeLocked(n int) []*batchedClaim {
	var (
		batch []*batchedClaim
		keep  = b.queue[:0]
		names = map[string]bool{}
	)
	for _, c := range b.queue {
		if len(batch) < n && !names[c.req.Name] {
			names[c.req.Name] = true
			batch = append(batch, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(b.queue[len(keep):])
	b.queue = keep
	return batch
}
