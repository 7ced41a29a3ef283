// Package fxmodule wires leader election into a go.uber.org/fx application.
//
// Add [Module] and an [election.Settings] value to the graph, and
// contribute leader-only jobs with [AsJob] (or a constructor returning
// [JobResult]):
//
//	fx.New(
//		fx.Supply(election.Settings{URL: "etcd://etcd:2379/myapp"}),
//		fxmodule.Module,
//		fxmodule.AsJob("reaper", reap),
//	)
//
// The module then
//
//   - applies the environment over the settings (ELECTION_URL,
//     ELECTION_TTL, ... see [election.Settings.FromEnv] and [EnvPrefix]),
//     opens the backend (blank-import its package) and fails the
//     application's construction with the error if the settings are bad;
//   - provides an [*election.Elector] whose events are logged through the
//     graph's *zap.Logger (package zaplog) and, if the graph holds a
//     prometheus.Registerer, exported as metrics (package electionprom);
//   - creates one [election.Candidate] per election named by the jobs,
//     with the ID and metadata of the settings, and provides a
//     [*Leadership] to ask "do I lead X?" and to run work only while
//     leading;
//   - campaigns on start (making one claim attempt per election, bounded by
//     the start context) and on stop cancels the jobs, waits for them and
//     releases, so that another instance takes over at once during a
//     rolling deploy, without waiting for the TTL.
//
// A job runs in its own goroutine each time this instance is elected, with
// a context cancelled when leadership ends for any reason; it must return
// promptly once the context is done, because the handover waits for it
// (see [election.Handler]). The next leader's jobs start only after this
// instance's jobs of the same election have returned.
//
// The module only wires the library's own types; an application without
// fx uses [election.Settings.Open], [election.New] and
// [election.Elector.NewCandidate] directly.
package fxmodule
