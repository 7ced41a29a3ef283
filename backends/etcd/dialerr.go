package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/electionkit/election"
)

// connErrors keeps the last connection-level gRPC error seen by a client it
// intercepts. The etcd client replaces a timed-out call's error with the
// bare context error, losing why it could not connect ("connection
// refused", "x509: certificate signed by unknown authority"); New puts the
// reason back into its error.
type connErrors struct {
	last atomic.Pointer[error]
}

// interceptor records errors of unary calls below the etcd client's retry
// layer, where gRPC still reports the latest connection error.
func (r *connErrors) interceptor() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
			r.last.Store(&err)
		}
		return err
	})
}

// explain adds the recorded connection error to err, a failure of New. A
// TLS handshake failure is a configuration problem that retrying cannot
// fix: it is reported with election.ErrInvalidArgument naming the TLS field.
func (r *connErrors) explain(where string, err error) error {
	if r == nil {
		return storeError("connect to "+where, "", err)
	}
	last := r.last.Load()
	if last == nil || errors.Is(err, election.ErrInvalidArgument) {
		return storeError("connect to "+where, "", err)
	}
	cause := status.Convert(*last).Message()
	if strings.Contains(cause, "authentication handshake failed") {
		return fmt.Errorf("etcd: connect to %s: %w: TLS: %s", where, election.ErrInvalidArgument, cause)
	}
	for _, sign := range tlsMismatchSigns {
		if strings.Contains(cause, sign) {
			cause += "; do client and server agree on TLS (https endpoint, CA, client certificate)?"
			break
		}
	}
	return fmt.Errorf("etcd: connect to %s: %w: %w (%s)", where, election.ErrUnavailable, err, cause)
}

// tlsMismatchSigns are what gRPC reports when one side speaks TLS and the
// other does not, or the server drops a client without a certificate. A
// server crashing mid-handshake looks the same, hence a hint, not a verdict.
var tlsMismatchSigns = []string{
	"server preface",
	"broken pipe",
	"connection reset",
	"first record does not look like a TLS handshake",
}
