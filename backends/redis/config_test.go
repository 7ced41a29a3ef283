package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/electionkit/election"
)

func TestConfigReportsEveryProblem(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled: New does no I/O
	defer client.Close()
	_, err := New(client, Config{
		Quarantine:        -time.Second,
		NoQuarantine:      true,
		WaitReplicas:      -1,
		WaitTimeout:       time.Second,
		SubscriptionCheck: -time.Second,
	})
	if !errors.Is(err, election.ErrInvalidArgument) {
		t.Fatalf("New = %v, want ErrInvalidArgument", err)
	}
	for _, field := range []string{"Quarantine: -1s is negative", "set together with NoQuarantine", "WaitReplicas", "WaitTimeout", "SubscriptionCheck"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %q", err, field)
		}
	}
}

func TestConfigRejectsClients(t *testing.T) {
	if _, err := New(nil, Config{}); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "client") {
		t.Errorf("New(nil) = %v, want ErrInvalidArgument naming client", err)
	}
	ring := goredis.NewRing(&goredis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if _, err := New(ring, Config{}); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "Ring") {
		t.Errorf("New(ring) = %v, want ErrInvalidArgument naming the Ring", err)
	}
	cluster := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	if _, err := New(cluster, Config{WaitReplicas: 1, WaitTimeout: time.Second}); !errors.Is(err, election.ErrInvalidArgument) || !strings.Contains(err.Error(), "WaitReplicas") {
		t.Errorf("New(cluster, WaitReplicas) = %v, want ErrInvalidArgument naming WaitReplicas", err)
	}
	b, err := New(cluster, Config{})
	if err != nil {
		t.Fatalf("New(cluster) = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	b, err := New(client, Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	if b.cfg.Prefix != DefaultPrefix || b.cfg.SubscriptionCheck != DefaultSubscriptionCheck {
		t.Errorf("defaults = %+v", b.cfg)
	}
	lim := b.Limits()
	if lim.MinTTL != time.Millisecond || lim.MaxTTL != MaxTTL {
		t.Errorf("Limits = %+v", lim)
	}
}
