package consul

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// errClosed is returned by every operation of a closed Backend.
var errClosed = fmt.Errorf("consul: backend closed: %w", election.ErrUnavailable)

// storeErr wraps an error of a Consul call made for what ("claim \"x\"").
// A rejected ACL token or a request the agent refuses as malformed wraps
// election.ErrInvalidArgument (retrying cannot help); everything else wraps
// election.ErrUnavailable. Both wrap the native error.
func storeErr(what string, err error) error {
	switch {
	case aclDenied(err):
		return fmt.Errorf("consul: %s: %w: ACL token rejected (check Token, TokenFile or CONSUL_HTTP_TOKEN): %w",
			what, election.ErrInvalidArgument, err)
	case badRequest(err):
		return fmt.Errorf("consul: %s: %w: request refused by the agent: %w", what, election.ErrInvalidArgument, err)
	default:
		return fmt.Errorf("consul: %s: %w: %w", what, election.ErrUnavailable, err)
	}
}

// aclDenied reports whether err says the token is unknown or lacks a
// permission. Some client calls return untyped errors, so the message is
// checked too; these strings are acl.ErrPermissionDenied and
// acl.ErrNotFound on the server.
func aclDenied(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusForbidden {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Permission denied") || strings.Contains(msg, "ACL not found")
}

// badRequest reports a request the agent rejects whatever its state: a bad
// parameter (400), a too large value (413), an Enterprise-only field sent to
// a Community Edition server, or a TTL outside session_ttl_min..max.
func badRequest(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && (se.Code == http.StatusBadRequest || se.Code == http.StatusRequestEntityTooLarge) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Invalid Session TTL") || strings.Contains(msg, "too large") ||
		strings.Contains(msg, "Consul Enterprise feature")
}

// txnError turns the per-operation errors of a rolled-back transaction into
// one error.
type txnError api.TxnErrors

func (e txnError) Error() string {
	msgs := make([]string, 0, len(e))
	for _, te := range e {
		msgs = append(msgs, fmt.Sprintf("op %d: %s", te.OpIndex, te.What))
	}
	return "transaction rolled back: " + strings.Join(msgs, "; ")
}

// failed reports whether operation op failed with a message containing
// substr ("" matches any message).
func (e txnError) failed(op int, substr string) bool {
	for _, te := range e {
		if (op < 0 || te.OpIndex == op) && strings.Contains(te.What, substr) {
			return true
		}
	}
	return false
}
