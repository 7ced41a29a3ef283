package etcd

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/electionkit/election"
)

// storeError classifies an error from the etcd client for op (and the
// election name, when there is one) and wraps both the election sentinel
// and the native error, so that errors.Is finds either.
//
//   - lease not found: the session is gone, [election.ErrSessionExpired];
//   - authentication and permission failures: retrying cannot help, so
//     [election.ErrInvalidArgument] (a credential is invalid);
//   - everything else, including deadlines, lost leaders and closed
//     connections: [election.ErrUnavailable], the outcome is unknown.
func storeError(op, name string, err error) error {
	what := "etcd: " + op
	if name != "" {
		what = fmt.Sprintf("etcd: %s %q", op, name)
	}
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("%s: %w: %w", what, election.ErrSessionExpired, err)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Errorf("%s: %w: the etcd user may not read and write under the prefix: %w", what, election.ErrInvalidArgument, err)
	case isCredentialError(err):
		return fmt.Errorf("%s: %w: credentials rejected: %w", what, election.ErrInvalidArgument, err)
	default:
		return fmt.Errorf("%s: %w: %w", what, election.ErrUnavailable, err)
	}
}

func isCredentialError(err error) bool {
	for _, e := range []error{
		rpctypes.ErrAuthFailed,
		rpctypes.ErrUserEmpty,
		rpctypes.ErrUserNotFound,
		rpctypes.ErrRoleNotGranted,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// invalid returns an error wrapping [election.ErrInvalidArgument] that names
// the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("etcd: %w: %s: %s", election.ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}
