package consul

import "testing"

// TestNextIndex checks Consul's documented rules for the index of the next
// blocking query: reset to 0 when the index goes backwards (a server
// restored from a snapshot or rebuilt), and never block on 0.
func TestNextIndex(t *testing.T) {
	for _, tc := range []struct{ prev, got, want uint64 }{
		{0, 0, 1},    // a bogus zero index would make every query return at once
		{0, 42, 42},  // first query
		{42, 42, 42}, // timed out without a change
		{42, 50, 50}, // a change
		{50, 7, 0},   // went backwards: start over with a non-blocking query
	} {
		if got := nextIndex(tc.prev, tc.got); got != tc.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.prev, tc.got, got, tc.want)
		}
	}
}
