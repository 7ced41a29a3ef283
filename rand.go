package election

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
)

// lockedRand is the one source of the core's random choices (renewal
// jitter, backoff, owner tokens, default IDs), safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// newLockedRand returns a lockedRand over src, or, when src is nil, over a
// ChaCha8 generator seeded from crypto/rand: a cryptographically strong
// source, since owner tokens come from it.
func newLockedRand(src rand.Source) *lockedRand {
	if src == nil {
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails on supported platforms
		src = rand.NewChaCha8(seed)
	}
	return &lockedRand{r: rand.New(src)}
}

func (l *lockedRand) float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func (l *lockedRand) int64n(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}

// token returns a new owner token: 128 random bits in hex.
func (l *lockedRand) token() string {
	var b [16]byte
	l.mu.Lock()
	binary.LittleEndian.PutUint64(b[:8], l.r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], l.r.Uint64())
	l.mu.Unlock()
	return hex.EncodeToString(b[:])
}

// DefaultID returns a new candidate ID made of the host name, the process
// ID and a random suffix, the default for [CandidateConfig.ID]. Call it
// once to give every candidate of a process the same ID.
func DefaultID() string { return makeID(newLockedRand(nil)) }

func (e *Elector) defaultID() string { return makeID(e.rng) }

func makeID(r *lockedRand) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "candidate"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), r.token()[:6])
}
