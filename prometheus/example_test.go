package electionprom_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/electionkit/election"
	"github.com/electionkit/election/backends/memory"
	electionprom "github.com/electionkit/election/prometheus"
)

// Register the metrics, hand OnEvent to the elector, and the gauge shows
// which candidate leads.
func ExampleNew() {
	reg := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	m, err := electionprom.New(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	// OnEvent runs just after the fact, in the elector's own goroutine:
	// here a second hook says when the claim has reached the metrics.
	claimed := make(chan struct{})
	el, err := election.New(memory.New(), election.Config{TTL: time.Second, OnEvent: election.TeeEvents(m.OnEvent,
		func(ev election.Event) {
			if ev.Kind == election.EventClaimed {
				close(claimed)
			}
		})})
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
	<-claimed

	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP election_is_leader 1 while the candidate leads the election (state leading or uncertain), else 0.
# TYPE election_is_leader gauge
election_is_leader{candidate="pod-1",election="reaper"} 1
`), "election_is_leader")
	fmt.Println("leading:", err == nil)
	n, _ := testutil.GatherAndCount(reg, "election_claim_attempts_total")
	fmt.Println("claim attempt series:", n) // success, taken, error
	// Output:
	// leading: true
	// claim attempt series: 3
}
