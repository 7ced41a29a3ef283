package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// envPrefix starts the environment variable of every flag.
const envPrefix = "ELECT_"

// urlEnv is the variable --url is read from, shared with the library's
// Settings.FromEnv.
const urlEnv = "ELECTION_URL"

// cli is one subcommand's flags and arguments: flags from the environment,
// then from the command line, positional arguments, and the command after
// "--".
type cli struct {
	name     string
	synopsis string // after "elect NAME "
	about    string
	examples string
	npos     int  // positional arguments wanted before "--"
	wantCmd  bool // a command after "--" is required
	fs       *flag.FlagSet
	envOf    map[string]string // flag name → environment variable

	flags   *commonFlags
	url     string
	verbose bool
	pos     []string
	command []string
}

func newCLI(name, synopsis, about, examples string, npos int, wantCmd bool) *cli {
	c := &cli{name: name, synopsis: synopsis, about: about, examples: examples, npos: npos, wantCmd: wantCmd,
		fs: flag.NewFlagSet("elect "+name, flag.ContinueOnError), envOf: map[string]string{}}
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	c.fs.StringVar(&c.url, "url", "", "the store `URL`, as election.Open takes it (env "+urlEnv+")")
	c.envOf["url"] = urlEnv
	c.fs.BoolVar(&c.verbose, "v", false, "log every election event to stderr")
	c.envOf["v"] = envPrefix + "VERBOSE"
	c.envOf["o"] = envPrefix + "OUTPUT"
	return c
}

// envName returns the environment variable of flag name.
func (c *cli) envName(name string) string {
	if e, ok := c.envOf[name]; ok {
		return e
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (c *cli) envNames() []string {
	var names []string
	c.fs.VisitAll(func(f *flag.Flag) {
		if e := c.envName(f.Name); strings.HasPrefix(e, envPrefix) {
			names = append(names, e)
		}
	})
	return names
}

// parse reads the environment, then args. It returns done with the exit
// code when elect should exit now (help, or a usage error, reported).
func (c *cli) parse(args []string, stdout, stderr io.Writer) (code int, done bool) {
	fail := func(format string, a ...any) (int, bool) {
		fmt.Fprintf(stderr, "elect %s: %s\nRun 'elect %s --help' for usage.\n", c.name, fmt.Sprintf(format, a...), c.name)
		return exitUsage, true
	}
	var envErr error
	c.fs.VisitAll(func(f *flag.Flag) {
		e := c.envName(f.Name)
		v, ok := os.LookupEnv(e)
		if !ok || v == "" || envErr != nil {
			return
		}
		if f.Name == "meta" {
			for _, kv := range strings.Split(v, ",") {
				if err := c.fs.Set(f.Name, kv); err != nil {
					envErr = fmt.Errorf("%s=%q: %v", e, v, err)
					return
				}
			}
			return
		}
		if err := c.fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("%s=%q: %v", e, v, err)
		}
	})
	if envErr != nil {
		return fail("%v", envErr)
	}
	before, after, dashes := args, []string(nil), false
	for i, a := range args {
		if a == "--" {
			before, after, dashes = args[:i], args[i+1:], true
			break
		}
	}
	// Flags and positional arguments may be interleaved before "--".
	rest := before
	for {
		if err := c.fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.usage(stdout)
				return exitOK, true
			}
			return fail("%v", err)
		}
		rest = c.fs.Args()
		if len(rest) == 0 {
			break
		}
		c.pos = append(c.pos, rest[0])
		rest = rest[1:]
	}
	switch {
	case len(c.pos) < c.npos:
		return fail("missing %s", strings.Fields(c.synopsis)[len(c.pos)+1])
	case len(c.pos) > c.npos && c.wantCmd && !dashes:
		return fail("unexpected argument %q: put -- before the command (elect %s %s)", c.pos[c.npos], c.name, c.synopsis)
	case len(c.pos) > c.npos:
		return fail("unexpected argument %q", c.pos[c.npos])
	case c.wantCmd && len(after) == 0:
		return fail("missing -- COMMAND [ARGS...]")
	case !c.wantCmd && dashes:
		return fail("takes no command after --")
	}
	c.command = after
	if c.url == "" {
		return fail("no store: pass --url or set %s (etcd://host:2379/prefix, redis://host:6379/0, consul://host:8500)", urlEnv)
	}
	return 0, false
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: elect %s %s\n\n%s\n\nFlags (each also from the environment variable shown):\n", c.name, c.synopsis, c.about)
	var flags []*flag.Flag
	c.fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	for _, f := range flags {
		typ, help := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if len(f.Name) == 1 {
			head = "  -" + f.Name
		}
		if typ != "" {
			head += " " + typ
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s%s [%s]\n", head, help, def, c.envName(f.Name))
	}
	fmt.Fprintf(w, "\nExamples:\n%s\nExit codes: see 'go doc github.com/electionkit/election/cmd/elect'.\n", c.examples)
}

// metaFlag collects repeated key=value flags.
type metaFlag map[string]string

func (m metaFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func (m metaFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	m[k] = val
	return nil
}

// positive checks a duration flag the user set.
func positive(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--%s %v is not positive", name, d)
	}
	return nil
}
