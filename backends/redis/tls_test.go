package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// TestRedissURL opens a rediss:// URL (TLS, parsed by go-redis) against a
// redis-server that speaks only TLS.
func TestRedissURL(t *testing.T) {
	addr := teststore.StartRedis(t, teststore.RedisOptions{TLS: teststore.NewPKI(t, "redis").TLS(false)}).Addr
	ctx := testContext(t, 30*time.Second)

	// The test CA is not in the system pool: verification fails, a
	// configuration problem retrying cannot fix.
	if _, err := OpenURL(ctx, mustParse(t, "rediss://"+addr+"/?dial_timeout=2s")); !errors.Is(err, election.ErrInvalidArgument) {
		t.Errorf("OpenURL with an untrusted certificate = %v, want ErrInvalidArgument", err)
	}
	b, err := OpenURL(ctx, mustParse(t, "rediss://"+addr+"/?skip_verify=true&quarantine=10ms"))
	if err != nil {
		t.Fatalf("OpenURL(rediss://…?skip_verify=true): %v", err)
	}
	defer b.Close()
	s, err := b.OpenSession(ctx, connTestTTL)
	if err != nil {
		t.Fatal(err)
	}
	claimWatched(t, ctx, b, s, "tls", "a")
}
