package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.uber.org/fx"

	"github.com/electionkit/election"
)

// JobGroup is the fx value group that [Module] reads jobs from.
const JobGroup = "election.jobs"

// Job is leader-only work: Run is called in its own goroutine each time
// this instance is elected in Election, with a context cancelled when
// leadership ends. Several jobs may name the same election; they share one
// candidate and run side by side, in no particular order.
type Job struct {
	// Election is the election name. Required; see [election.ValidateName].
	Election string
	// Run is the work. Required: [Module] fails to start on a nil Run.
	Run election.Handler
}

// JobResult lets a constructor with dependencies contribute a job:
//
//	fx.Provide(func(db *sql.DB) fxmodule.JobResult {
//		return fxmodule.JobResult{Job: fxmodule.Job{Election: "reaper", Run: newReaper(db).Run}}
//	})
type JobResult struct {
	fx.Out

	// Job joins the JobGroup value group.
	Job Job `group:"election.jobs"`
}

// AsJob contributes run as a job of the election name. A nil run makes
// the application fail to start with an error wrapping
// [election.ErrInvalidArgument]; a bad name is reported when [Module]
// builds the candidates.
func AsJob(name string, run election.Handler) fx.Option {
	if run == nil {
		return fx.Error(fmt.Errorf("%w: fxmodule: AsJob(%q): nil handler (use Campaign to campaign without a job)",
			election.ErrInvalidArgument, name))
	}
	return fx.Supply(fx.Annotated{Group: JobGroup, Target: Job{Election: name, Run: run}})
}

// Campaign makes this instance campaign in the election name without a
// job of its own, so that [Leadership.IsLeader] and
// [Leadership.RunIfLeader] can be used for it.
func Campaign(name string) fx.Option {
	return fx.Supply(fx.Annotated{Group: JobGroup, Target: Job{Election: name, Run: idle}})
}

// idle is the job of an election joined through Campaign.
func idle(context.Context, election.Term) {}

// groupJobs returns the handlers of each election, and the election names
// sorted, for the valid jobs. It also reports every job without a name or
// a Run at once, wrapping [election.ErrInvalidArgument]. The order of jobs
// (fx value groups have none) does not matter.
func groupJobs(jobs []Job) (map[string][]election.Handler, []string, error) {
	byName := map[string][]election.Handler{}
	var errs []error
	for _, j := range jobs {
		switch {
		case j.Election == "":
			errs = append(errs, fmt.Errorf("%w: fxmodule: job with an empty election name", election.ErrInvalidArgument))
		case j.Run == nil:
			errs = append(errs, fmt.Errorf("%w: fxmodule: job for %q has a nil Run", election.ErrInvalidArgument, j.Election))
		default:
			byName[j.Election] = append(byName[j.Election], j.Run)
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return byName, names, errors.Join(errs...)
}
