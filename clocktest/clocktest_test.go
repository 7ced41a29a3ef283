package clocktest_test

import (
	"testing"
	"time"

	"github.com/electionkit/election/clocktest"
)

func TestAdvanceRunsDueCallbacksInTimeOrder(t *testing.T) {
	start := time.Unix(100, 0)
	c := clocktest.New(start)
	var got []string
	var at []time.Duration
	record := func(name string) func() {
		return func() { got = append(got, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(3*time.Second, record("c"))
	c.AfterFunc(time.Second, record("a"))
	stopped := c.AfterFunc(2*time.Second, record("never"))
	c.AfterFunc(2*time.Second, func() {
		record("b")()
		c.AfterFunc(500*time.Millisecond, record("b+")) // due within the same Advance
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should report true once, then false")
	}
	c.Advance(2999 * time.Millisecond)
	want := []string{"a", "b", "b+"}
	if len(got) != len(want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ran %v, want %v", got, want)
		}
	}
	if at[0] != time.Second || at[1] != 2*time.Second || at[2] != 2500*time.Millisecond {
		t.Fatalf("callbacks saw times %v, want 1s, 2s, 2.5s", at)
	}
	if c.Now().Sub(start) != 2999*time.Millisecond || c.Pending() != 1 {
		t.Fatalf("now %v, pending %d; want 2.999s and 1", c.Now().Sub(start), c.Pending())
	}
	c.Advance(time.Millisecond)
	if len(got) != 4 || got[3] != "c" {
		t.Fatalf("ran %v, want c last", got)
	}
}
