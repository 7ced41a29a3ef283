// Command elect runs any program as a cluster-wide singleton, from a shell
// script, a crontab or a systemd unit, on etcd, Redis or Consul.
//
//	elect run   [flags] NAME -- COMMAND [ARGS...]   campaign; run COMMAND while leading
//	elect lease [flags] KEY  -- COMMAND [ARGS...]   run COMMAND only if a one-shot lease is obtained
//	elect leader [flags] NAME                       print the leader, its metadata and fence
//	elect watch  [flags] NAME                       stream leader changes
//
// The store is named by --url or ELECTION_URL, with the URLs of
// election.Open (etcd://h1:2379/prefix?ttl=10s, redis://host:6379/0,
// consul://host:8500?min_ttl=1s). An etcd or Redis store that does not
// answer within the URL's dial_timeout (default 5s) makes elect exit 69
// (Consul is checked by the first claim); with lazy=true in the URL,
// elect run starts anyway and campaigns until the store answers, which
// suits a unit started at boot before the store. Every flag can also be set from the
// environment as ELECT_<FLAG> with dashes as underscores (ELECT_TTL,
// ELECT_GRACE, ELECT_NO_WAIT, ELECT_META="k=v,k2=v2"); a flag on the command
// line wins over the variable. An ELECT_ variable that names no flag is an
// error, so that a typo is not silently ignored.
//
// # The command's life
//
// While elect leads, COMMAND runs in its own process group with
// ELECTION_NAME, ELECTION_ID, ELECTION_FENCE (the term's fencing token) and
// ELECTION_DEADLINE_FILE in its environment: a file elect rewrites
// atomically after every renewal with the local deadline of the term, in RFC
// 3339 with nanoseconds. If renewals stop extending that deadline, or the
// term is lost, elect sends SIGTERM to the command's whole tree (its process
// group and every other descendant), then SIGKILL at the latest a kill
// margin (DriftMargin/2) before the deadline, so that the command is dead
// before the store can elect anyone else. --grace (default min(TTL/4, 10s))
// is the time between the two; it must fit in the slack a healthy renewal
// schedule leaves: grace + kill margin ≤ TTL − DriftMargin −
// RenewInterval×(1+RenewJitter) − RenewTimeout, checked at start.
//
// elect does not run COMMAND itself: it re-executes itself as a small
// supervisor (Linux only) that is a child subreaper, gets SIGTERM when elect
// dies (the parent-death signal) and sees its control pipe close, and then
// kills every descendant it has adopted, including ones that left the
// process group with setsid, before the deadline in ELECTION_DEADLINE_FILE.
// So kill -9 of elect does not leave the command running. elect is a
// subreaper too: if the supervisor itself is killed, the command's
// processes are reparented to elect, which kills them. A paused elect
// (SIGSTOP, a frozen VM) cannot stop its command: the command must pass
// ELECTION_FENCE with its writes, so that the systems it writes to refuse
// a deposed leader.
//
// This command uses the standard flag package, not cobra: it lives in the
// library's module (so that `go install .../cmd/elect@version` works and
// the repository's tests run its tests), and a CLI framework's dependencies
// would then enter the module graph of every program that imports the
// library.
//
// # Exit codes
//
//	0    COMMAND exited 0; `leader` showed a leader; stopped by SIGINT or SIGTERM while no command ran
//	N    otherwise, COMMAND's exit status: its code, or 128+S if it died of signal S
//	2    usage: a bad flag, value, variable or argument (the message names it)
//	3    `leader`: the election is vacant
//	69   the store could not be reached (opening it, or the one attempt of --no-wait or lease)
//	75   --no-wait or lease: held by another (the message names the holder)
//	76   --no-wait or lease: the term or lease was lost while COMMAND ran, and COMMAND was killed
//	125  elect failed otherwise
//	126  COMMAND is not executable
//	127  COMMAND was not found
//
// A command can exit with one of these codes too; elect passes it on.
//
// # Signals
//
// SIGINT and SIGTERM stop elect: they are forwarded to the command, elect
// waits for it (at most --grace, never past the deadline), resigns or
// releases, and exits with its status. SIGHUP, SIGUSR1 and SIGUSR2 are
// passed on to each of the command's processes once (its process group
// and any descendant that left it), and elect and the command go on: a
// daemon's reload works through elect.
//
// Without --no-wait, a lost term does not end elect run: the command is
// killed and elect campaigns again. When the command exits on its own,
// elect resigns (releases the election) and then, per --restart, exits with
// its status (never; on-failure after a success) or campaigns again after a
// capped exponential backoff (--backoff, doubling up to --backoff-max, reset
// once a command ran longer than --backoff-max).
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes of elect, documented in the package comment and the README.
const (
	exitOK          = 0
	exitUsage       = 2
	exitVacant      = 3
	exitUnavailable = 69
	exitTaken       = 75
	exitLost        = 76
	exitFailed      = 125
	exitNoExec      = 126
	exitNotFound    = 127
)

// supervisorArg is the hidden subcommand elect re-executes itself with.
const supervisorArg = "__supervise"

// subcommand is one of elect's commands.
type subcommand struct {
	name    string
	summary string
	newArgs func() *cli
	run     func(c *cli) int
}

var subcommands = []subcommand{
	{"run", "campaign; run COMMAND while leading", newRunCLI, runMain},
	{"lease", "run COMMAND only if a one-shot lease is obtained", newLeaseCLI, leaseMain},
	{"leader", "print the leader, its metadata and fence", newLeaderCLI, leaderMain},
	{"watch", "stream leader changes", newWatchCLI, watchMain},
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		topUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case supervisorArg:
		return superviseMain(args[1:])
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 {
			for _, sc := range subcommands {
				if sc.name == args[1] {
					c := sc.newArgs()
					c.usage(stdout)
					return exitOK
				}
			}
			fmt.Fprintf(stderr, "elect: unknown command %q\n", args[1])
			return exitUsage
		}
		topUsage(stdout)
		return exitOK
	}
	for _, sc := range subcommands {
		if sc.name != name {
			continue
		}
		c := sc.newArgs()
		if code, done := c.parse(args[1:], stdout, stderr); done {
			return code
		}
		if err := checkEnvNames(); err != nil {
			fmt.Fprintf(stderr, "elect %s: %v\n", name, err)
			return exitUsage
		}
		return sc.run(c)
	}
	fmt.Fprintf(stderr, "elect: unknown command %q\n", name)
	topUsage(stderr)
	return exitUsage
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, `elect runs any program as a cluster-wide singleton, on etcd, Redis or Consul.

Usage:
`)
	for _, sc := range subcommands {
		fmt.Fprintf(w, "  elect %-7s %s\n", sc.name, sc.summary)
	}
	fmt.Fprintf(w, `
The store: --url or ELECTION_URL (etcd://h:2379/prefix, redis://h:6379/0, consul://h:8500).
An etcd or Redis store that does not answer within the URL's dial_timeout (default 5s): exit 69;
with lazy=true in the URL (redis://h:6379/0?lazy=true), elect run campaigns until it answers.
Every flag can also be set as ELECT_<FLAG> (ELECT_TTL=10s, ELECT_NO_WAIT=true).
Run 'elect COMMAND --help' for a command's flags and examples.
`)
}

// checkEnvNames rejects ELECT_ variables that name no flag of any command.
func checkEnvNames() error {
	known := map[string]bool{}
	for _, sc := range subcommands {
		c := sc.newArgs()
		for _, n := range c.envNames() {
			known[n] = true
		}
	}
	var bad []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !known[name] {
			bad = append(bad, name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Errorf("unknown environment variable %s (known: %s)", strings.Join(bad, ", "), strings.Join(names, ", "))
}
