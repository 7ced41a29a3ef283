package zaplog_test

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	"github.com/electionkit/election/zaplog"
)

// The hook turns each event into one structured line. zap.NewExample
// writes JSON without timestamps, so the output is stable.
func ExampleOnEvent() {
	hook := zaplog.OnEvent(zap.NewExample())
	hook(election.Event{
		Kind:        election.EventLost,
		State:       election.StateSteppingDown,
		Election:    "reaper",
		Candidate:   "pod-1",
		TokenPrefix: "3f9a1c2e",
		Fence:       7,
		Reason:      election.LossDeadline,
		Err:         election.ErrLost,
	})
	// Output:
	// {"level":"error","msg":"election: leadership lost","election":"reaper","candidate":"pod-1","operation":"lost","state":"stepping-down","token_prefix":"3f9a1c2e","fence":7,"reason":"deadline","error":"election: leadership lost"}
}

// Wire the hook into an elector; combine it with metrics through
// election.TeeEvents.
func ExampleOnEvent_elector() {
	logger := zap.NewNop() // your application's logger
	el, err := election.New(memory.New(), election.Config{
		TTL:     time.Second,
		OnEvent: zaplog.OnEvent(logger.Named("election")),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer el.Close(context.Background())

	c, err := el.NewCandidate(election.CandidateConfig{Name: "reaper", ID: "pod-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("leader:", c.IsLeader())
	// Output:
	// leader: true
}
