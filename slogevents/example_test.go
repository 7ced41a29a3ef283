package slogevents_test

import (
	"log/slog"
	"os"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/slogevents"
)

// Each event becomes one record. Here the time attribute is dropped so
// that the output is stable; durations render as nanoseconds in JSON.
func ExampleHandler() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	hook := slogevents.Handler(logger) // election.Config{OnEvent: hook}
	hook(election.Event{
		Kind:        election.EventHandlerOverrun,
		State:       election.StateSteppingDown,
		Election:    "reaper",
		Candidate:   "pod-1",
		TokenPrefix: "3f9a1c2e",
		Fence:       7,
		Overrun:     1200 * time.Millisecond,
	})
	// Output:
	// {"level":"ERROR","msg":"election: handlers of candidate \"pod-1\" in election \"reaper\" (fence 7) still run 1.2s past the term's deadline; the store may elect another leader: only fencing protects writes now","election":"reaper","candidate":"pod-1","operation":"handler-overrun","state":"stepping-down","token_prefix":"3f9a1c2e","fence":7,"overrun":1200000000}
}
