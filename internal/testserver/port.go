package testserver

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports are drawn from below the kernel's ephemeral range, so that no
// outgoing connection of this or another test can take a port between
// FreePorts returning it and the server binding it. A port is handed out
// once per test binary; other test binaries draw at random from the same
// range, so a collision between them is possible but unlikely.
const (
	lowestPort     = 10000
	fallbackEphLow = 32768
)

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free (for TCP and UDP)
// when checked and that no other FreePort or FreePorts call of this test
// binary returns. It fails the test if none can be found.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct ports on 127.0.0.1 with FreePort's guarantee.
// A server needing several ports (Consul uses six) takes them in one call.
// It fails the test if n is not positive or not enough ports are free.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freePorts(n)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	return ports
}

func freePorts(n int) ([]int, error) {
	if n <= 0 {
		return nil, fmt.Errorf("FreePorts: n = %d, want > 0", n)
	}
	portMu.Lock()
	defer portMu.Unlock()

	high := ephemeralLow()
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	ports := make([]int, 0, n)
	for attempt := 0; len(ports) < n && attempt < 50*n+1000; attempt++ {
		port := lowestPort + rand.IntN(high-lowestPort)
		if portsUsed[port] {
			continue
		}
		closers, ok := tryBind(port)
		if !ok {
			continue
		}
		// Keep it bound until all n are found, so they are distinct.
		held = append(held, closers...)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("FreePorts: found %d of %d free ports in [%d, %d)", len(ports), n, lowestPort, high)
	}
	for _, p := range ports {
		portsUsed[p] = true
	}
	return ports, nil
}

// tryBind binds port on 127.0.0.1 for TCP and UDP (Consul's serf and DNS
// ports use both) and returns the sockets to close.
func tryBind(port int) ([]io.Closer, bool) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, false
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		l.Close()
		return nil, false
	}
	return []io.Closer{l, pc}, true
}

// ephemeralLow returns the start of the kernel's ephemeral port range.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallbackEphLow
	}
	fields := strings.Fields(string(data))
	if len(fields) < 1 {
		return fallbackEphLow
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low < lowestPort+1000 {
		return fallbackEphLow
	}
	return low
}
