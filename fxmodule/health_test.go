package fxmodule_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/electionkit/election"
	"github.com/electionkit/election/fxmodule"
	"github.com/electionkit/election/health"
)

// The module's Leadership serves the health checks: live while running,
// ready while leading the named election; an unknown election is an
// error.
func TestHealthHandlers(t *testing.T) {
	var l *fxmodule.Leadership
	app := fxtest.New(t,
		fx.Supply(election.Settings{URL: storeURL(t), ID: "a"}),
		fxmodule.Module,
		fxmodule.Campaign("reaper"),
		fx.Populate(&l),
	)
	app.RequireStart()
	status := func(h http.Handler) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		return rec.Code, rec.Body.String()
	}
	ready, err := l.Readiness("reaper", health.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := status(l.Liveness()); code != http.StatusOK {
		t.Errorf("liveness %d %s", code, body)
	}
	if code, body := status(ready); code != http.StatusOK || !strings.Contains(body, `"state":"leading"`) {
		t.Errorf("readiness %d %s, want 200 leading", code, body)
	}
	if _, err := l.Readiness("nope", health.Options{}); !errors.Is(err, election.ErrInvalidArgument) {
		t.Errorf("Readiness of an unknown election = %v, want ErrInvalidArgument", err)
	}
	app.RequireStop()
	if code, body := status(ready); code != http.StatusServiceUnavailable {
		t.Errorf("readiness after stop %d %s, want 503", code, body)
	}
	if code, body := status(l.Liveness()); code != http.StatusServiceUnavailable {
		t.Errorf("liveness after stop %d %s, want 503", code, body)
	}
}
