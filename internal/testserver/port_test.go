package testserver

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortsAreDistinctAndBindable(t *testing.T) {
	ports := FreePorts(t, 6)
	ports = append(ports, FreePort(t))
	seen := map[int]bool{}
	for _, port := range ports {
		if seen[port] {
			t.Fatalf("port %d handed out twice in %v", port, ports)
		}
		seen[port] = true
		if port < lowestPort || port >= ephemeralLow() {
			t.Errorf("port %d outside [%d, %d)", port, lowestPort, ephemeralLow())
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Errorf("port %d not bindable on 127.0.0.1: %v", port, err)
			continue
		}
		l.Close()
	}
}

func TestFreePortsSkipsBoundPorts(t *testing.T) {
	// A port some other socket holds is never returned.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if closers, ok := tryBind(l.Addr().(*net.TCPAddr).Port); ok {
		for _, c := range closers {
			c.Close()
		}
		t.Fatalf("tryBind succeeded on a bound port")
	}
}

func TestFreePortsRejectsBadCount(t *testing.T) {
	msg := expectFatal(t, func(tb testing.TB) { FreePorts(tb, 0) })
	if msg == "" {
		t.Errorf("FreePorts(0) gave an empty failure message")
	}
}
