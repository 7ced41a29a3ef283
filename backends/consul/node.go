package consul

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Every session of a prefix is created on one catalog node of its own, the
// session node, instead of the node of the agent the backend talks to.
//
// Consul ties each session to a node, and deleting a node from the catalog
// destroys every session on it, whatever the session's checks: a graceful
// `consul leave` of a client agent, a SIGTERM of it (leave_on_terminate is
// the default for clients), and an operator's `consul force-leave` of a
// dead one all make the Raft leader deregister the agent's node. A session
// on that node would end at once while its holder, cut off with its agent,
// still leads until its own deadline, and another candidate would be
// elected at once: two leaders for up to a TTL. The session node is
// registered through the catalog API with no health check, so it is no
// Serf member: no agent's leave, failure or force-leave concerns it, and
// the leader's reconciliation, which reaps only nodes that carry Serf's
// health check, leaves it alone. Only the session's TTL, or an operator
// destroying the session or deregistering the session node, ends it.

// sessionNodeSuffix ends the name of every session node.
const sessionNodeSuffix = "-sessions"

// sessionNodeAddress is the session node's address in the catalog. The
// node is no host: nothing connects to it.
const sessionNodeAddress = "0.0.0.0"

// SessionNode returns the name of the catalog node this backend creates
// its sessions on: the prefix with every character but letters, digits
// and '-' replaced by '-', then "-sessions" ("electionkit-sessions" for the
// default prefix). It names the node in ACL rules (`node` and `session`
// write) and in `consul catalog nodes`. Deregistering it destroys the
// sessions of every candidate of the prefix.
func (b *Backend) SessionNode() string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '-'
	}, b.s.prefix) + sessionNodeSuffix
}

// registerSessionNode puts the session node in the catalog, leaving it
// as it is if it is there already (SkipNodeUpdate): registering it is
// idempotent, and concurrent backends may do it at once.
func (b *Backend) registerSessionNode(ctx context.Context) error {
	reg := &api.CatalogRegistration{
		Node:           b.SessionNode(),
		Address:        sessionNodeAddress,
		NodeMeta:       map[string]string{"electionkit": "sessions of prefix " + b.s.prefix},
		SkipNodeUpdate: true,
		Partition:      b.s.partition,
	}
	_, err := b.client.Catalog().Register(reg, b.write(ctx))
	return err
}

// missingNode reports Consul's answer to a session create on a node that
// is not in the catalog.
func missingNode(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && strings.Contains(se.Body, "Missing node registration")
}
