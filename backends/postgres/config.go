package postgres

import (
	"errors"
	"regexp"
	"time"
)

// Defaults that replace zero fields of [Config].
const (
	// DefaultSchema is Config.Schema when empty.
	DefaultSchema = "public"
	// DefaultTablePrefix is Config.TablePrefix when empty.
	DefaultTablePrefix = "election_"
	// DefaultListenCheck is Config.ListenCheck when zero.
	DefaultListenCheck = time.Second
	// DefaultSelfNotifyTimeout is Config.SelfNotifyTimeout when zero.
	DefaultSelfNotifyTimeout = 5 * time.Second
)

// maxIdentifier is the longest identifier Postgres keeps (NAMEDATALEN-1).
const maxIdentifier = 63

// identifier is what Schema and TablePrefix may hold: plain lower-case SQL
// identifiers, so that the names need no quoting and read the same in psql.
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Config configures a [Backend]. The zero value of every field selects its
// default; [Open] validates the result once and reports every problem at
// once.
type Config struct {
	// Schema holds the tables and the sequence. Default DefaultSchema
	// ("public"). Lower-case letters, digits and underscores, not starting
	// with a digit; at most 63 bytes. Created (IF NOT EXISTS) with the
	// tables unless NoCreate.
	Schema string

	// TablePrefix starts the name of each table and of the sequence:
	// PREFIXsessions, PREFIXclaims, PREFIXfences, and the LISTEN/NOTIFY
	// channel SCHEMA.PREFIXevents. Default DefaultTablePrefix
	// ("election_"). The same characters as Schema; the longest name
	// (the channel) must fit in 63 bytes. Two prefixes are two separate
	// namespaces of elections.
	TablePrefix string

	// NoCreate turns off creating the schema, tables and sequence at Open
	// (CREATE ... IF NOT EXISTS, under an advisory lock). Set it when the
	// schema is managed by migrations (schema.sql in this package is the
	// migration for the default names); Open then checks that the tables
	// exist and fails with [election.ErrInvalidArgument] naming the
	// missing one.
	NoCreate bool

	// ListenConnString is the connection string (URL or key=value) of the
	// connection that LISTENs for the backend's notifications. Empty: the
	// main connection string. Set it to a direct connection to Postgres
	// when the main one goes through a transaction-mode pooler (PgBouncer),
	// which silently drops notifications; Open detects that case (its own
	// NOTIFY never arrives) and fails, naming this setting.
	ListenConnString string

	// ListenCheck is how long the listening connection may stay silent
	// before it is pinged; a ping unanswered for as long again marks it
	// broken, and every watch gets an error event (the core watches
	// again). Default DefaultListenCheck (1s). Must not be negative.
	ListenCheck time.Duration

	// SelfNotifyTimeout bounds the wait for the backend's own NOTIFY,
	// sent through the main connection at Open and after every reconnect
	// of the listener. Default DefaultSelfNotifyTimeout (5s). Must not be
	// negative.
	SelfNotifyTimeout time.Duration
	// Lazy makes [Open] return without contacting the server: no table
	// creation or check, no listening connection, no self-check. The
	// first OpenSession, Leader, Watch or Notify does them, and returns
	// their error (wrapping [election.ErrUnavailable] while the server
	// cannot be reached; the next call tries again), so a process can
	// start while its database is down. pgx still opens the pool's
	// pool_min_conns connections in the background. Default false.
	Lazy bool
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.TablePrefix == "" {
		c.TablePrefix = DefaultTablePrefix
	}
	if c.ListenCheck == 0 {
		c.ListenCheck = DefaultListenCheck
	}
	if c.SelfNotifyTimeout == 0 {
		c.SelfNotifyTimeout = DefaultSelfNotifyTimeout
	}
	return c
}

// validate reports every problem of c (after defaults) at once.
func (c Config) validate() error {
	var errs []error
	if !identifier.MatchString(c.Schema) || len(c.Schema) > maxIdentifier {
		errs = append(errs, invalid("Schema", "%q is not a lower-case SQL identifier of at most %d bytes ([a-z_][a-z0-9_]*)", c.Schema, maxIdentifier))
	}
	if !identifier.MatchString(c.TablePrefix) {
		errs = append(errs, invalid("TablePrefix", "%q is not a lower-case SQL identifier ([a-z_][a-z0-9_]*)", c.TablePrefix))
	} else if n := len(names(c).channel); n > maxIdentifier {
		errs = append(errs, invalid("TablePrefix", "the channel name %q would be %d bytes, above Postgres's %d", names(c).channel, n, maxIdentifier))
	}
	if c.ListenCheck < 0 {
		errs = append(errs, invalid("ListenCheck", "%v is negative", c.ListenCheck))
	}
	if c.SelfNotifyTimeout < 0 {
		errs = append(errs, invalid("SelfNotifyTimeout", "%v is negative", c.SelfNotifyTimeout))
	}
	return errors.Join(errs...)
}
