package consul

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/hashicorp/consul/api"

	"github.com/electionkit/election"
)

// errClosed is returned by every operation of a closed Backend.
var errClosed = fmt.Errorf("consul: backend closed: %w", election.ErrUnavailable)

// errFilteredByACLs fails a watch whose bucket listing left out keys the
// token may not read: they would look vacant.
var errFilteredByACLs = errors.New("the agent left out keys the token may not read " +
	"(watches need key_prefix \"<Prefix>/\" read)")

// storeErr wraps an error of a Consul call made for what ("claim \"x\"").
// A rejected ACL token, an agent certificate that fails verification,
// plain HTTP sent to the agent's HTTPS port or HTTPS to its plain HTTP
// port, or a request the agent refuses
// as malformed wraps election.ErrInvalidArgument (retrying cannot help);
// everything else wraps election.ErrUnavailable, with a hint when the agent
// may have refused the client certificate. Both wrap the native error.
func storeErr(what string, err error) error {
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		return fmt.Errorf("consul: %s: %w: agent's TLS certificate rejected "+
			"(check TLS.CAFile, TLS.CAPath or CONSUL_CACERT, and TLS.ServerName): %w",
			what, election.ErrInvalidArgument, err)
	case httpToHTTPS(err):
		return fmt.Errorf("consul: %s: %w: the agent speaks HTTPS on this address "+
			"(use an https:// Address, Scheme https or tls=true): %w", what, election.ErrInvalidArgument, err)
	case httpsToHTTP(err):
		return fmt.Errorf("consul: %s: %w: the agent speaks plain HTTP on this address "+
			"(use an http:// Address or Scheme http, or the agent's HTTPS port): %w", what, election.ErrInvalidArgument, err)
	case aclDenied(err):
		return fmt.Errorf("consul: %s: %w: ACL token rejected (check Token, TokenFile or CONSUL_HTTP_TOKEN): %w",
			what, election.ErrInvalidArgument, err)
	case badRequest(err):
		return fmt.Errorf("consul: %s: %w: request refused by the agent: %w", what, election.ErrInvalidArgument, err)
	default:
		return fmt.Errorf("consul: %s: %w: %w%s", what, election.ErrUnavailable, err, clientCertHint(err))
	}
}

// httpToHTTPS reports the answer of an HTTPS-only port to plain HTTP: Go's
// server answers 400 with a body saying exactly that.
func httpToHTTPS(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusBadRequest &&
		strings.Contains(se.Body, "HTTP request to an HTTPS server")
}

// httpsToHTTP reports a TLS handshake answered with plain HTTP: crypto/tls
// fails with a RecordHeaderError, which net/http replaces by a message
// saying so when the reply looks like HTTP.
func httpsToHTTP(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// clientCertHint explains err when the agent may have refused the
// client's certificate (verify_incoming), or returns "". An agent that
// refuses it sends a TLS alert after the handshake and hangs up; a request
// sees the alert only if it was already on the connection, and otherwise
// just a reset, an EOF or, over HTTP/2, "client conn could not be
// established" or "client connection force closed" (the transport drops
// the connection the alert ended), as when an agent goes down. Hence a verdict for the alert,
// a hint for the rest, and ErrUnavailable for all, so that one
// misconfiguration always gets the same sentinel.
func clientCertHint(err error) string {
	// crypto/tls reports an alert from the peer as a *net.OpError with Op
	// "remote error"; the alert's own type is unexported.
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" && strings.Contains(opErr.Err.Error(), "certificate") {
		return " (the agent refused the client certificate: set TLS.CertFile and TLS.KeyFile, or " +
			"CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, to a certificate of a CA the agent trusts)"
	}
	var urlErr *url.Error
	if !errors.As(err, &urlErr) || !strings.HasPrefix(urlErr.URL, "https://") {
		return ""
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "http2: client conn could not be established") ||
		strings.Contains(err.Error(), "http2: client connection force closed") {
		return " (the agent hung up on TLS: if it requires client certificates, " +
			"check TLS.CertFile and TLS.KeyFile, or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY)"
	}
	return ""
}

// aclDenied reports whether err says the token is unknown or lacks a
// permission. Some client calls return untyped errors, so the message is
// checked too; these strings are acl.ErrPermissionDenied and
// acl.ErrNotFound on the server.
func aclDenied(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusForbidden || errors.Is(err, errFilteredByACLs) {
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
