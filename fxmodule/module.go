package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/electionkit/election"
	electionprom "github.com/electionkit/election/prometheus"
	"github.com/electionkit/election/zaplog"
)

// EnvPrefix is the prefix of the environment variables applied over the
// graph's [election.Settings]: ELECTION_URL, ELECTION_TTL,
// ELECTION_RENEW_INTERVAL, ELECTION_DRIFT_MARGIN, ELECTION_ID.
const EnvPrefix = "ELECTION_"

// openTimeout bounds opening the backend while the graph is built (fx
// gives constructors no context). Backends that dial eagerly (Redis
// pings) fail construction after it.
const openTimeout = 10 * time.Second

// Module provides an [*election.Elector] and a [*Leadership] built from
// the graph's [election.Settings] and jobs (see [Params]), and campaigns
// from application start to stop. It provides nothing else: not the
// logger, not the registry, not the settings.
var Module = fx.Module("election",
	fx.Provide(New),
	fx.Invoke(campaign),
)

// campaign makes fx build the Leadership even if nothing asks for it:
// campaigning is the module's purpose, and New registers the hooks.
func campaign(*Leadership) {}

// Params is what [New] takes from the graph. Fields may be added; none
// that is required today will become optional or vice versa.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle

	// Settings configures the backend and the candidates; the environment
	// (see [EnvPrefix]) overrides it. Optional: without it, the
	// environment alone must name the backend. Supply a value, not a
	// pointer: fx.Supply(election.Settings{URL: ...}).
	Settings election.Settings `optional:"true"`

	// Logger receives every election event (package zaplog). Optional:
	// without it, events are not logged.
	Logger *zap.Logger `optional:"true"`

	// Registerer, if present, gets the election metrics (package
	// electionprom), registered on start-up and unregistered on stop.
	// Provide a *prometheus.Registry as this interface with
	// fx.Annotate(reg, fx.As(new(prometheus.Registerer))).
	Registerer prometheus.Registerer `optional:"true"`

	// Jobs are the leader-only jobs, from [AsJob], [Campaign] and
	// [JobResult]; in no particular order.
	Jobs []Job `group:"election.jobs"`
}

// Result is what [New] adds to the graph. Fields may be added.
type Result struct {
	fx.Out

	// Elector runs the module's candidates; use it for Observe, TryLease
	// (through its Backend) or candidates of your own, which it stops on
	// application stop.
	Elector *election.Elector
	// Leadership answers for the elections of the jobs.
	Leadership *Leadership
}

// New opens the backend the settings name, creates the elector and one
// candidate per election of the jobs, and appends a lifecycle hook that
// campaigns on start and, on stop, stops the candidates (jobs cancelled
// and waited for, elections released), closes the elector and the
// backend and unregisters the metrics.
//
// It fails, so that the application does not start, on bad settings or
// environment, an unknown URL scheme, bad jobs or election names (errors
// wrapping [election.ErrInvalidArgument] that name the field), an
// unreachable store for backends that dial on open, and a metrics
// registration conflict. Nothing stays open when it fails.
func New(p Params) (Result, error) {
	s, err := p.Settings.FromEnv(EnvPrefix)
	if err != nil {
		return Result{}, fmt.Errorf("fxmodule: settings from environment: %w", err)
	}
	if s.URL == "" {
		return Result{}, fmt.Errorf("%w: fxmodule: no backend URL: supply election.Settings{URL: ...} to the graph or set %s%s",
			election.ErrInvalidArgument, EnvPrefix, election.EnvURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	b, cfg, err := s.Open(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("fxmodule: open backend: %w", err)
	}
	r := &resources{backend: b, registerer: p.Registerer}
	fail := func(err error) (Result, error) {
		_ = r.close(context.Background())
		return Result{}, err
	}

	var onEvent func(election.Event)
	onEvent, r.metrics, err = observe(p.Logger, p.Registerer)
	if err != nil {
		return fail(err)
	}
	cfg.OnEvent = onEvent
	if r.elector, err = election.New(b, cfg); err != nil {
		return fail(fmt.Errorf("fxmodule: elector: %w", err))
	}
	if r.leadership, err = newLeadership(r.elector, s.ID, s.Metadata, p.Jobs); err != nil {
		return fail(err)
	}
	p.Lifecycle.Append(fx.Hook{OnStart: r.start, OnStop: r.stop})
	return Result{Elector: r.elector, Leadership: r.leadership}, nil
}

// observe returns the OnEvent hook that logs to logger and, if reg is not
// nil, updates metrics registered with it. Either may be nil.
func observe(logger *zap.Logger, reg prometheus.Registerer) (func(election.Event), *electionprom.Metrics, error) {
	var logHook, metricsHook func(election.Event)
	if logger != nil {
		logHook = zaplog.OnEvent(logger)
	}
	var m *electionprom.Metrics
	if reg != nil {
		var err error
		if m, err = electionprom.New(reg); err != nil {
			return nil, nil, fmt.Errorf("fxmodule: metrics: %w", err)
		}
		metricsHook = m.OnEvent
	}
	return election.TeeEvents(logHook, metricsHook), m, nil
}

// resources owns what New opened, and closes it in order.
type resources struct {
	backend    election.Backend
	registerer prometheus.Registerer
	metrics    *electionprom.Metrics
	elector    *election.Elector
	leadership *Leadership
}

// start campaigns. fx does not call OnStop for a hook whose OnStart
// failed, so a failed start closes everything itself.
func (r *resources) start(ctx context.Context) error {
	err := r.leadership.start(ctx)
	if err == nil {
		return nil
	}
	// Bounded by one TTL: a claim not released by then expires anyway.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.elector.Config().TTL)
	defer cancel()
	return errors.Join(err, r.stop(stopCtx))
}

// stop hands over and closes. If jobs do not return before ctx ends, the
// elector keeps their claims (and renews them) until they return, then
// releases them and ends its session; the backend is closed after that,
// in the background, so that no other instance leads while this one's jobs
// still run.
func (r *resources) stop(ctx context.Context) error {
	err := r.leadership.stop(ctx)
	if err == nil {
		return r.close(ctx)
	}
	if !errors.Is(err, election.ErrHandlersRunning) || r.elector == nil {
		return errors.Join(err, r.close(ctx))
	}
	_ = r.elector.Close(ctx) // ErrHandlersRunning too: it finishes once the jobs return
	go func() {
		<-r.elector.Done()
		_ = r.close(context.Background())
	}()
	return fmt.Errorf("%w (the claims are kept until the jobs return, then released; the backend is closed then)", err)
}

// close closes the elector (if any), unregisters the metrics and closes
// the backend, joining the errors.
func (r *resources) close(ctx context.Context) error {
	var errs []error
	if r.elector != nil {
		if err := r.elector.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("fxmodule: close elector: %w", err))
		}
	}
	if r.metrics != nil {
		r.registerer.Unregister(r.metrics)
	}
	if err := election.CloseBackend(r.backend); err != nil {
		errs = append(errs, fmt.Errorf("fxmodule: close backend: %w", err))
	}
	return errors.Join(errs...)
}
