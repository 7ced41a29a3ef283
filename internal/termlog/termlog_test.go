package termlog

import (
	"fmt"
	"testing"
	"time"
)

// errorsTB captures Errorf calls instead of failing the test.
type errorsTB struct {
	testing.TB
	errs []string
}

func (e *errorsTB) Helper() {}
func (e *errorsTB) Errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

func TestCheckReportsOverlapAndFenceOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	cases := []struct {
		name  string
		terms []*term
		errs  int
	}{
		{"in order", []*term{
			{election: "x", id: "a", fence: 1, start: at(0), end: at(1)},
			{election: "x", id: "b", fence: 2, start: at(2), end: at(3)},
			{election: "y", id: "a", fence: 1, start: at(0)}, // another election may overlap
		}, 0},
		{"overlap", []*term{
			{election: "x", id: "a", fence: 1, start: at(0), end: at(2)},
			{election: "x", id: "b", fence: 2, start: at(1), end: at(3)},
		}, 1},
		{"earlier term never ended", []*term{
			{election: "x", id: "a", fence: 1, start: at(0)},
			{election: "x", id: "b", fence: 2, start: at(1), end: at(3)},
		}, 1},
		{"fence went back", []*term{
			{election: "x", id: "a", fence: 5, start: at(0), end: at(1)},
			{election: "x", id: "b", fence: 5, start: at(2), end: at(3)},
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := &Log{terms: tc.terms}
			tb := &errorsTB{TB: t}
			if n := l.Check(tb); n != len(tc.terms) {
				t.Errorf("Check counted %d terms, want %d", n, len(tc.terms))
			}
			if len(tb.errs) != tc.errs {
				t.Errorf("Check reported %q, want %d errors", tb.errs, tc.errs)
			}
			if got := l.Count("x"); got != 2 {
				t.Errorf("Count(x) = %d, want 2", got)
			}
		})
	}
}
