package teststore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/electionkit/election/internal/testserver"
)

// ConsulClusterOptions selects how [StartConsulCluster] configures its
// agents. The zero value is 3 servers and 2 client agents with
// [DefaultConsulMinTTL].
type ConsulClusterOptions struct {
	// MinTTL is the servers' session_ttl_min. Zero means
	// [DefaultConsulMinTTL]; a negative value fails the test.
	MinTTL time.Duration
	// KeepDeadServers turns off autopilot's cleanup of dead servers
	// (cleanup_dead_servers): a server frozen for more than a few seconds
	// stays a Raft voter and can lead again when it thaws, instead of being
	// removed and disrupting elections with its votes until it rejoins.
	KeepDeadServers bool
}

// ConsulCluster is a Consul datacenter of 3 servers and 2 client agents
// started by [StartConsulCluster], as production runs it: servers hold the
// Raft state, and each host's processes talk to the client agent on that
// host. Every agent binds 127.0.0.1 on ports of its own, keeps a data
// directory across restarts, and runs with Raft timeouts of 1s
// (raft_multiplier 1) and LAN gossip tuned so that a killed agent is
// marked failed within about 2s instead of Consul's 5 to 7s.
type ConsulCluster struct {
	// Servers are the three servers, "s1" to "s3".
	Servers []*ConsulAgent
	// Clients are the client agents, "a1" and "a2". A client that leaves
	// (gracefully, or on SIGTERM: leave_on_terminate is Consul's default
	// for clients) takes its node out of the catalog.
	Clients []*ConsulAgent
	// MinTTL is the session_ttl_min the servers run with.
	MinTTL time.Duration
	// Started is how long the cluster took until every agent's node was
	// in the catalog with a Raft leader elected.
	Started time.Duration

	keepDead bool
	check    *http.Client
}

// ConsulAgent is one agent of a [ConsulCluster]. The embedded
// [testserver.Process] pauses, resumes, kills (SIGKILL) and starts it
// again; Start waits until the agent knows a Raft leader and its node is in
// the catalog.
type ConsulAgent struct {
	*testserver.Process
	// Node is the agent's node name.
	Node string
	// Server is true for a server, false for a client agent.
	Server bool
	// Addr is the HTTP API's address, "127.0.0.1:port"; URL is
	// "http://" + Addr.
	Addr, URL string
	// RPCAddr is a server's Raft and RPC address, as /v1/status/leader
	// names it; "" for a client.
	RPCAddr string

	cluster *ConsulCluster
	// formed is set once the whole cluster has formed: until then a server
	// counts as started when its HTTP API answers, since no Raft leader
	// can exist before all three servers run.
	formed *atomic.Bool
}

// StartConsulCluster starts 3 servers (bootstrap_expect 3) and 2 client
// agents joined to them, and returns once a Raft leader is elected and the
// nodes of all five agents are in the catalog. It fails the test if opts is
// invalid, the consul binary is missing, or the cluster does not form
// within [testserver.DefaultReadyTimeout]; every agent is killed when the
// test ends.
func StartConsulCluster(t testing.TB, opts ConsulClusterOptions) *ConsulCluster {
	t.Helper()
	if opts.MinTTL < 0 {
		t.Fatalf("teststore: ConsulClusterOptions.MinTTL is negative (%v)", opts.MinTTL)
	}
	c := &ConsulCluster{MinTTL: opts.MinTTL, keepDead: opts.KeepDeadServers, check: newCheckClient(t, nil)}
	if c.MinTTL == 0 {
		c.MinTTL = DefaultConsulMinTTL
	}
	bin := testserver.Binary(t, "consul")
	const servers, clients = 3, 2
	ports := testserver.FreePorts(t, 3*(servers+clients))
	var join []string
	for i := range servers {
		join = append(join, "127.0.0.1:"+strconv.Itoa(ports[3*i+1]))
	}
	formed := new(atomic.Bool)
	begin := time.Now()
	for i := range servers + clients {
		a := &ConsulAgent{
			Server:  i < servers,
			Addr:    "127.0.0.1:" + strconv.Itoa(ports[3*i]),
			cluster: c,
			formed:  formed,
		}
		a.URL = "http://" + a.Addr
		if a.Server {
			a.Node = fmt.Sprintf("s%d", i+1)
			a.RPCAddr = "127.0.0.1:" + strconv.Itoa(ports[3*i+2])
		} else {
			a.Node = fmt.Sprintf("a%d", i-servers+1)
		}
		a.start(t, bin, c.MinTTL, ports[3*i:3*i+3], join)
		if a.Server {
			c.Servers = append(c.Servers, a)
		} else {
			c.Clients = append(c.Clients, a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testserver.DefaultReadyTimeout)
	defer cancel()
	for _, a := range c.Agents() {
		if err := a.waitReady(ctx); err != nil {
			t.Fatalf("teststore: consul cluster did not form: %s: %v\n--- last lines of %s ---\n%s",
				a.Node, err, a.LogPath(), a.LogTail(40))
		}
	}
	formed.Store(true)
	c.Started = time.Since(begin)
	t.Logf("teststore: consul cluster (servers %s, %s, %s; clients %s, %s) ready in %v",
		c.Servers[0].Addr, c.Servers[1].Addr, c.Servers[2].Addr, c.Clients[0].Addr, c.Clients[1].Addr,
		c.Started.Round(time.Millisecond))
	return c
}

// start writes the agent's configuration and launches it. ports are its
// HTTP, Serf LAN and server RPC ports; join lists the servers' Serf
// addresses.
func (a *ConsulAgent) start(t testing.TB, bin string, minTTL time.Duration, ports []int, join []string) {
	t.Helper()
	dir := t.TempDir()
	conf := map[string]any{
		"node_name":      a.Node,
		"datacenter":     "dc1",
		"data_dir":       filepath.Join(dir, "data"),
		"server":         a.Server,
		"bind_addr":      "127.0.0.1",
		"client_addr":    "127.0.0.1",
		"advertise_addr": "127.0.0.1",
		"retry_join":     join,
		"retry_interval": "200ms",
		"ports": map[string]int{
			"http": ports[0], "https": -1, "serf_lan": ports[1], "server": ports[2],
			"serf_wan": -1, "dns": -1, "grpc": -1, "grpc_tls": -1,
		},
		"disable_update_check":        true,
		"disable_anonymous_signature": true,
		"disable_host_node_id":        true,
		"performance":                 map[string]any{"raft_multiplier": 1},
		// A dead agent is suspected after one 400ms probe and declared
		// failed some 1.2s later (suspicion_mult × probe_interval, scaled
		// by the member count), instead of Consul's 5 to 7s.
		"gossip_lan": map[string]any{
			"gossip_interval": "100ms", "probe_interval": "400ms", "probe_timeout": "200ms",
			"suspicion_mult": 2, "retransmit_mult": 2,
		},
		"ui_config": map[string]any{"enabled": false},
		"connect":   map[string]any{"enabled": false},
		"peering":   map[string]any{"enabled": false},
		"log_level": "warn",
	}
	if a.Server {
		conf["bootstrap_expect"] = 3
		conf["session_ttl_min"] = minTTL.String()
		conf["autopilot"] = map[string]any{"server_stabilization_time": "1s", "cleanup_dead_servers": !a.cluster.keepDead}
	} else {
		// Consul's default for clients, stated: SIGTERM is a graceful leave.
		conf["leave_on_terminate"] = true
	}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatalf("teststore: consul configuration: %v", err)
	}
	confPath := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(confPath, data, 0o600); err != nil {
		t.Fatalf("teststore: %v", err)
	}
	a.Process = testserver.Start(t, testserver.Config{
		Name:   "consul-" + a.Node,
		Binary: bin,
		Args:   []string{"agent", "-config-file=" + confPath},
		Dir:    dir,
		Ready: func(ctx context.Context) error {
			if !a.formed.Load() {
				// The first start: the HTTP API answering is enough, the
				// cluster's readiness is checked once all agents run.
				var self map[string]any
				return getJSON(ctx, a.cluster.check, a.URL+"/v1/agent/self", "", &self)
			}
			return a.ready(ctx)
		},
	})
}

// ready reports nil once the agent knows a Raft leader and its own node is
// in the catalog, which is when sessions can be created through it.
func (a *ConsulAgent) ready(ctx context.Context) error {
	var leader string
	if err := getJSON(ctx, a.cluster.check, a.URL+"/v1/status/leader", "", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no Raft leader known")
	}
	var node struct {
		Node *struct{ Node string }
	}
	if err := getJSON(ctx, a.cluster.check, a.URL+"/v1/catalog/node/"+a.Node, "", &node); err != nil {
		return err
	}
	if node.Node == nil {
		return fmt.Errorf("node %s not registered yet", a.Node)
	}
	return nil
}

// waitReady polls ready every 50ms until it succeeds or ctx ends.
func (a *ConsulAgent) waitReady(ctx context.Context) error {
	for {
		err := a.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last check: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Agents returns the servers, then the clients.
func (c *ConsulCluster) Agents() []*ConsulAgent {
	return append(append([]*ConsulAgent(nil), c.Servers...), c.Clients...)
}

// Leave makes the agent leave the cluster gracefully (PUT /v1/agent/leave,
// what `consul leave` does) and waits until its process has exited. For a
// client the Raft leader then deregisters its node, and with it every
// session created on that node. (The agent's anti-entropy may register the
// node again in the seconds it lingers before exiting, without its
// sessions, until the leader's next reconcile: wait for the Serf status
// "left", not for the node to leave the catalog.) Start brings it back.
func (a *ConsulAgent) Leave(ctx context.Context) error {
	if err := a.cluster.put(ctx, a.URL+"/v1/agent/leave"); err != nil {
		return fmt.Errorf("teststore: %s leave: %w", a.Node, err)
	}
	return a.waitExit(ctx)
}

// Terminate sends the agent SIGTERM, as a service manager stopping it does,
// and waits until its process has exited. A client agent leaves the cluster
// on SIGTERM (leave_on_terminate), like Leave.
func (a *ConsulAgent) Terminate(ctx context.Context) error {
	pid := a.PID()
	if pid == 0 {
		return fmt.Errorf("teststore: %s is not running", a.Node)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("teststore: SIGTERM %s: %w", a.Node, err)
	}
	return a.waitExit(ctx)
}

// waitExit waits until the agent's process has exited.
func (a *ConsulAgent) waitExit(ctx context.Context) error {
	for a.PID() != 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("teststore: %s did not exit: %w", a.Node, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// member is an entry of /v1/agent/members.
type member struct {
	Name   string
	Status int // Serf: 1 alive, 2 leaving, 3 left, 4 failed
}

// MemberStatus returns node's Serf status as the first running server sees
// it: "alive", "leaving", "left", "failed", or "none" when it is not a
// member.
func (c *ConsulCluster) MemberStatus(ctx context.Context, node string) (string, error) {
	s, err := c.anyServer()
	if err != nil {
		return "", err
	}
	var members []member
	if err := getJSON(ctx, c.check, s.URL+"/v1/agent/members", "", &members); err != nil {
		return "", err
	}
	for _, m := range members {
		if m.Name == node {
			switch m.Status {
			case 1:
				return "alive", nil
			case 2:
				return "leaving", nil
			case 3:
				return "left", nil
			case 4:
				return "failed", nil
			}
			return fmt.Sprintf("status %d", m.Status), nil
		}
	}
	return "none", nil
}

// WaitMemberStatus polls MemberStatus every 50ms until node has status.
func (c *ConsulCluster) WaitMemberStatus(ctx context.Context, node, status string) error {
	for {
		got, err := c.MemberStatus(ctx, node)
		if err == nil && got == status {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("teststore: %s not %s: %w (last: %q, %v)", node, status, ctx.Err(), got, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ForceLeave asks a server to force node out of the cluster (PUT
// /v1/agent/force-leave, what `consul force-leave` does), as an operator
// does with a node that died. Serf acts only on a failed node: call
// WaitMemberStatus(ctx, node, "failed") first. The node is then "left",
// and the Raft leader deregisters it, and with it every session created on
// it.
func (c *ConsulCluster) ForceLeave(ctx context.Context, node string) error {
	s, err := c.anyServer()
	if err != nil {
		return err
	}
	if err := c.put(ctx, s.URL+"/v1/agent/force-leave/"+node); err != nil {
		return fmt.Errorf("teststore: force-leave %s: %w", node, err)
	}
	return nil
}

// Leader returns the server that is the Raft leader as a running server
// sees it.
func (c *ConsulCluster) Leader(ctx context.Context) (*ConsulAgent, error) {
	s, err := c.anyServer()
	if err != nil {
		return nil, err
	}
	var addr string
	if err := getJSON(ctx, c.check, s.URL+"/v1/status/leader", "", &addr); err != nil {
		return nil, err
	}
	for _, a := range c.Servers {
		if a.RPCAddr == addr {
			return a, nil
		}
	}
	return nil, fmt.Errorf("teststore: no known server is the Raft leader (leader %q)", addr)
}

// TransferLeader moves Raft leadership to another server (POST
// /v1/operator/raft/transfer-leader, what `consul operator raft
// transfer-leader` does) and waits until every running server names the
// new leader. It returns the old and the new leader.
func (c *ConsulCluster) TransferLeader(ctx context.Context) (old, leader *ConsulAgent, err error) {
	old, err = c.Leader(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := c.post(ctx, old.URL+"/v1/operator/raft/transfer-leader"); err != nil {
		return nil, nil, fmt.Errorf("teststore: transfer leadership from %s: %w", old.Node, err)
	}
	for {
		leader, err = c.Leader(ctx)
		if err == nil && leader != old && c.agree(ctx, leader) {
			return old, leader, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("teststore: leadership did not move from %s: %w (last: %v)", old.Node, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// agree reports whether every running server names leader as the leader.
func (c *ConsulCluster) agree(ctx context.Context, leader *ConsulAgent) bool {
	for _, s := range c.Servers {
		if s.PID() == 0 {
			continue
		}
		var addr string
		if err := getJSON(ctx, c.check, s.URL+"/v1/status/leader", "", &addr); err != nil || addr != leader.RPCAddr {
			return false
		}
	}
	return true
}

// anyServer returns the first running server.
func (c *ConsulCluster) anyServer() (*ConsulAgent, error) {
	for _, s := range c.Servers {
		if s.PID() != 0 {
			return s, nil
		}
	}
	return nil, errors.New("teststore: no consul server is running")
}

func (c *ConsulCluster) put(ctx context.Context, url string) error {
	return c.send(ctx, http.MethodPut, url)
}

func (c *ConsulCluster) post(ctx context.Context, url string) error {
	return c.send(ctx, http.MethodPost, url)
}

// send sends an empty request and fails on any status but 200.
func (c *ConsulCluster) send(ctx context.Context, method, url string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.check.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s %s", method, req.URL.Path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// ServerStore returns the fault controls over the cluster's servers as a
// whole, for the conformance suite's Store: Pause freezes all three
// (SIGSTOP), Resume continues them, Stop kills them (SIGKILL) and Start
// starts them again on their data and waits until a Raft leader is elected
// and every server is in the catalog. Client agents keep running
// throughout, as on production hosts, and answer with errors (or hold
// requests) while no server does.
func (c *ConsulCluster) ServerStore() *ConsulServers { return &ConsulServers{c: c} }

// ConsulServers is the servers of a [ConsulCluster] as one store; see
// [ConsulCluster.ServerStore].
type ConsulServers struct{ c *ConsulCluster }

// Pause freezes every server.
func (s *ConsulServers) Pause(ctx context.Context) error {
	return s.each(func(a *ConsulAgent) error { return a.Pause(ctx) })
}

// Resume continues every server.
func (s *ConsulServers) Resume(ctx context.Context) error {
	return s.each(func(a *ConsulAgent) error { return a.Resume(ctx) })
}

// Stop kills every server and waits until they have exited.
func (s *ConsulServers) Stop(ctx context.Context) error {
	return s.each(func(a *ConsulAgent) error { return a.Stop(ctx) })
}

// Start starts every stopped server at once (no Raft leader can be elected
// until a quorum runs) and waits until each is ready.
func (s *ConsulServers) Start(ctx context.Context) error {
	errs := make(chan error, len(s.c.Servers))
	for _, a := range s.c.Servers {
		go func() {
			if a.PID() != 0 {
				errs <- nil
				return
			}
			errs <- a.Start(ctx)
		}()
	}
	var all []error
	for range s.c.Servers {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// each applies f to every server and joins the errors.
func (s *ConsulServers) each(f func(*ConsulAgent) error) error {
	var errs []error
	for _, a := range s.c.Servers {
		errs = append(errs, f(a))
	}
	return errors.Join(errs...)
}
