package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Store operations are counted at the server, never in the client:
//
//   - Redis: INFO commandstats, the calls of every command (the meter's own
//     INFO excluded), and INFO stats total_net_input_bytes and
//     total_net_output_bytes.
//   - etcd: /metrics on the client URL: grpc_server_msg_received_total by
//     grpc_method (every unary request, and every message on a stream:
//     each LeaseKeepAlive request, each watch create or cancel), and
//     etcd_network_client_grpc_received_bytes_total and _sent_bytes_total.
//     etcd_server_proposals_committed_total (Raft writes) is shown apart.
//   - Consul: /v1/agent/metrics (the agent's default in-memory sink: 10s
//     intervals, the last finished one shown): the count of every
//     consul.api.http sample by method and path (one per HTTP request,
//     blocking queries counted when they return; the meter's own GET
//     v1/agent/metrics excluded), summed over the intervals that lie wholly
//     inside the window. consul.rpc.query (blocking and other reads the
//     server began) and consul.rpc.request are shown apart.

// opsReport is what a store did during a window.
type opsReport struct {
	window time.Duration
	ops    map[string]float64 // per operation name, in the window
	extra  map[string]float64 // other counters in the window (bytes, Raft proposals, RPCs)
}

func (r opsReport) total() float64 {
	var sum float64
	for _, v := range r.ops {
		sum += v
	}
	return sum
}

// perInterval scales a count in the window to one interval d.
func (r opsReport) perInterval(v float64, d time.Duration) float64 {
	if r.window <= 0 {
		return 0
	}
	return v * float64(d) / float64(r.window)
}

// breakdown lists the operations, most frequent first, each per interval d.
func (r opsReport) breakdown(d time.Duration, max int) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range r.ops {
		if v > 0 {
			all = append(all, kv{k, v})
		}
	}
	slices.SortFunc(all, func(a, b kv) int {
		if a.v != b.v {
			if a.v > b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for i, e := range all {
		if i == max {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", e.k, fmtCount(r.perInterval(e.v, d))))
	}
	var extras []string
	for _, k := range slices.Sorted(mapKeys(r.extra)) {
		extras = append(extras, fmt.Sprintf("%s %s", k, fmtCount(r.perInterval(r.extra[k], d))))
	}
	s := strings.Join(parts, ", ")
	if len(extras) > 0 {
		s += "; " + strings.Join(extras, ", ")
	}
	return s
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func fmtCount(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// meterHTTP is the meters' HTTP client: no connection is kept open, so
// that none is left behind when a case counts its goroutines after Close.
var meterHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// opsMeter counts a store's operations over a window.
type opsMeter interface {
	begin(ctx context.Context) error
	end(ctx context.Context) (opsReport, error)
}

func newOpsMeter(kind, addr string) opsMeter {
	switch kind {
	case "redis":
		return &redisMeter{addr: addr}
	case "etcd":
		return &etcdMeter{url: "http://" + addr + "/metrics"}
	case "consul":
		return &consulMeter{url: "http://" + addr + "/v1/agent/metrics"}
	}
	return nil
}

// counterSnapshot is a set of cumulative counters and when they were read.
type counterSnapshot struct {
	at     time.Time
	ops    map[string]float64
	extras map[string]float64
}

func delta(a, b counterSnapshot) opsReport {
	r := opsReport{window: b.at.Sub(a.at), ops: map[string]float64{}, extra: map[string]float64{}}
	for k, v := range b.ops {
		if d := v - a.ops[k]; d != 0 {
			r.ops[k] = d
		}
	}
	for k, v := range b.extras {
		r.extra[k] = v - a.extras[k]
	}
	return r
}

type redisMeter struct {
	addr   string
	client *goredis.Client
	first  counterSnapshot
}

func (m *redisMeter) snapshot(ctx context.Context) (counterSnapshot, error) {
	s := counterSnapshot{ops: map[string]float64{}, extras: map[string]float64{}}
	text, err := m.client.Info(ctx, "commandstats", "stats").Result()
	s.at = time.Now()
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			name, fields, _ := strings.Cut(rest, ":")
			for f := range strings.SplitSeq(fields, ",") {
				if v, ok := strings.CutPrefix(f, "calls="); ok {
					n, _ := strconv.ParseFloat(v, 64)
					if name != "info" {
						s.ops[strings.ToUpper(name)] = n
					}
				}
			}
			continue
		}
		for _, k := range []string{"total_net_input_bytes", "total_net_output_bytes"} {
			if v, ok := strings.CutPrefix(line, k+":"); ok {
				n, _ := strconv.ParseFloat(v, 64)
				s.extras[strings.TrimPrefix(k, "total_net_")] = n
			}
		}
	}
	return s, nil
}

func (m *redisMeter) begin(ctx context.Context) error {
	m.client = goredis.NewClient(&goredis.Options{Addr: m.addr, PoolSize: 1})
	var err error
	m.first, err = m.snapshot(ctx)
	return err
}

func (m *redisMeter) end(ctx context.Context) (opsReport, error) {
	defer m.client.Close()
	last, err := m.snapshot(ctx)
	if err != nil {
		return opsReport{}, err
	}
	return delta(m.first, last), nil
}

type etcdMeter struct {
	url   string
	first counterSnapshot
}

// promSample parses one Prometheus text line: name, labels, value.
func promSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	head := line[:sp]
	labels = map[string]string{}
	if i := strings.IndexByte(head, '{'); i >= 0 {
		for kv := range strings.SplitSeq(strings.TrimSuffix(head[i+1:], "}"), ",") {
			k, val, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(val, `"`)
		}
		head = head[:i]
	}
	return head, labels, v, true
}

func (m *etcdMeter) snapshot(ctx context.Context) (counterSnapshot, error) {
	s := counterSnapshot{ops: map[string]float64{}, extras: map[string]float64{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return s, err
	}
	resp, err := meterHTTP.Do(req)
	s.at = time.Now()
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		name, labels, v, ok := promSample(sc.Text())
		if !ok {
			continue
		}
		switch name {
		case "grpc_server_msg_received_total":
			s.ops[labels["grpc_method"]] += v
		case "etcd_network_client_grpc_received_bytes_total":
			s.extras["in-bytes"] = v
		case "etcd_network_client_grpc_sent_bytes_total":
			s.extras["out-bytes"] = v
		case "etcd_server_proposals_committed_total":
			s.extras["raft-proposals"] = v
		}
	}
	return s, sc.Err()
}

func (m *etcdMeter) begin(ctx context.Context) error {
	var err error
	m.first, err = m.snapshot(ctx)
	return err
}

func (m *etcdMeter) end(ctx context.Context) (opsReport, error) {
	last, err := m.snapshot(ctx)
	if err != nil {
		return opsReport{}, err
	}
	return delta(m.first, last), nil
}

// consulInterval is how long one interval of Consul's in-memory metrics
// sink lasts (the agent's default, not configurable on the endpoint).
const consulInterval = 10 * time.Second

type consulMeter struct {
	url       string
	start     time.Time
	cancel    context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex
	intervals map[time.Time]counterSnapshot // by interval start
	pollErr   error
}

type consulMetrics struct {
	Timestamp string
	Counters  []consulMetric
	Samples   []consulMetric
}

type consulMetric struct {
	Name   string
	Count  float64
	Labels map[string]string
}

func (m *consulMeter) poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return err
	}
	resp, err := meterHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("consul metrics: %s", resp.Status)
	}
	var cm consulMetrics
	if err := json.NewDecoder(resp.Body).Decode(&cm); err != nil {
		return err
	}
	ts, err := time.Parse("2006-01-02 15:04:05 -0700 MST", cm.Timestamp)
	if err != nil {
		return fmt.Errorf("consul metrics timestamp %q: %w", cm.Timestamp, err)
	}
	s := counterSnapshot{at: ts, ops: map[string]float64{}, extras: map[string]float64{}}
	for _, sm := range cm.Samples {
		if sm.Name != "consul.api.http" {
			continue
		}
		op := sm.Labels["method"] + " " + strings.ReplaceAll(sm.Labels["path"], "_", "/")
		if op == "GET v1/agent/metrics" {
			continue
		}
		s.ops[op] += sm.Count
	}
	for _, c := range cm.Counters {
		switch c.Name {
		case "consul.rpc.query", "consul.rpc.request":
			s.extras[c.Name] += c.Count
		}
	}
	m.mu.Lock()
	m.intervals[ts] = s
	m.mu.Unlock()
	return nil
}

func (m *consulMeter) begin(ctx context.Context) error {
	m.start = time.Now()
	m.intervals = map[time.Time]counterSnapshot{}
	if err := m.poll(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				if err := m.poll(pctx); err != nil && pctx.Err() == nil {
					m.mu.Lock()
					m.pollErr = err
					m.mu.Unlock()
				}
			}
		}
	}()
	return nil
}

// end waits until the last interval that ends by now is shown (up to one
// interval), then sums the intervals wholly inside the window.
func (m *consulMeter) end(ctx context.Context) (opsReport, error) {
	end := time.Now()
	lastFull := end.Truncate(consulInterval).Add(-consulInterval)
	deadline := time.Now().Add(consulInterval + 5*time.Second)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		_, ok := m.intervals[lastFull]
		m.mu.Unlock()
		if ok {
			break
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			break
		}
	}
	m.cancel()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	r := opsReport{ops: map[string]float64{}, extra: map[string]float64{}}
	for ts, s := range m.intervals {
		if ts.Before(m.start) || ts.Add(consulInterval).After(end) {
			continue
		}
		r.window += consulInterval
		for k, v := range s.ops {
			r.ops[k] += v
		}
		for k, v := range s.extras {
			r.extra[k] += v
		}
	}
	if r.window == 0 {
		return r, fmt.Errorf("consul metrics: no whole %v interval between %v and %v (last poll error: %v)",
			consulInterval, m.start.Format(time.TimeOnly), end.Format(time.TimeOnly), m.pollErr)
	}
	return r, nil
}
