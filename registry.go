package election

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Opener opens a Backend for a URL whose scheme it was registered for. The
// core has already removed its own query parameters (see [ParseURL]); an
// Opener rejects any parameter it does not know with an error wrapping
// [ErrInvalidArgument] that names it. A Backend that holds resources
// (connections, goroutines) implements io.Closer; [CloseBackend] closes it.
type Opener func(ctx context.Context, u *url.URL) (Backend, error)

var (
	driversMu sync.RWMutex
	drivers   = map[string]Opener{}
)

// Register makes a backend available under a URL scheme, the way
// database/sql drivers register: backend packages call it from init, and
// users blank-import the backends they want linked. Register panics if the
// scheme is empty or already registered or if open is nil: those are
// programming errors found at start-up.
func Register(scheme string, open Opener) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if scheme == "" || strings.ToLower(scheme) != scheme {
		panic(fmt.Sprintf("election: Register: invalid scheme %q (want non-empty lower case)", scheme))
	}
	if open == nil {
		panic("election: Register: nil Opener for scheme " + scheme)
	}
	if _, dup := drivers[scheme]; dup {
		panic("election: Register called twice for scheme " + scheme)
	}
	drivers[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	out := make([]string, 0, len(drivers))
	for s := range drivers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func lookupDriver(scheme string) (Opener, error) {
	driversMu.RLock()
	open, ok := drivers[scheme]
	driversMu.RUnlock()
	if !ok {
		return nil, invalid("url", "unknown scheme %q (forgotten import of its backend package? registered: %s)",
			scheme, strings.Join(Schemes(), ", "))
	}
	return open, nil
}

// CloseBackend closes b if it implements io.Closer, and does nothing
// otherwise. Backends opened by [Open] own their clients; close them with it.
func CloseBackend(b Backend) error {
	if c, ok := b.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
