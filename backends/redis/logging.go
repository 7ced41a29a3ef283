package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// go-redis has one logger for the whole process (redis.SetLogger), which by
// default prints lines such as "redis: connection pool: failed to dial
// after 5 attempts: dial tcp ...: connection refused" to stderr, once per
// failed connection attempt, for as long as a server is down. Every such
// failure already reaches the elector as an error wrapping
// election.ErrUnavailable (EventClaimFailed, EventRenewFailed,
// EventWatchFailed), so the lines only repeat it, on a stream the program
// does not own.
//
// Importing this package therefore replaces go-redis's default logger with
// one that passes each line to [slog.Default] as a Debug record (an Error
// record if the line reports a recovered panic), with the attribute
// component=go-redis: quiet unless the program's default slog handler
// enables Debug. It is installed from init, before main runs, so that a
// program that sets its own with goredis.SetLogger (logging.Disable,
// logging.Enable) afterwards keeps it: the last call wins. The logger is
// process-wide: it also carries the lines of the program's other go-redis
// clients.
func init() {
	goredis.SetLogger(slogLines{})
}

// slogLines is a go-redis logger that writes to slog.Default, looked up per
// line so that a later slog.SetDefault takes effect.
type slogLines struct{}

func (slogLines) Printf(ctx context.Context, format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	msg = strings.TrimPrefix(msg, "redis: ")
	level := slog.LevelDebug
	if strings.Contains(msg, "panic") {
		level = slog.LevelError
	}
	if ctx == nil {
		ctx = context.Background()
	}
	logger := slog.Default()
	if logger.Enabled(ctx, level) {
		logger.Log(ctx, level, "go-redis: "+msg, slog.String("component", "go-redis"))
	}
}
