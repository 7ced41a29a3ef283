package testserver

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary act as a server instead of running tests,
// so this package is tested against real processes without needing etcd,
// redis-server or consul.
const helperEnv = "TESTSERVER_HELPER"

func TestMain(m *testing.M) {
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		goleak.VerifyTestMain(m)
	default:
		os.Exit(runHelper(mode))
	}
}

// runHelper is the helper server's main.
func runHelper(mode string) int {
	switch mode {
	case "echo":
		// Serves an echo on 127.0.0.1:$HELPER_PORT.
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", os.Getenv("HELPER_PORT")))
		if err != nil {
			fmt.Println("listen:", err)
			return 2
		}
		fmt.Println("helper: echo listening on", l.Addr())
		for {
			conn, err := l.Accept()
			if err != nil {
				return 2
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	case "exit":
		fmt.Println("helper: exiting with status 3")
		return 3
	case "silent":
		// Runs but never becomes ready.
		fmt.Println("helper: never ready")
		time.Sleep(time.Hour)
		return 0
	case "fork":
		// Starts a child in its own process group and reports its pid.
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), helperEnv+"=silent")
		if err := child.Start(); err != nil {
			fmt.Println("fork:", err)
			return 2
		}
		fmt.Println("helper: child pid", child.Process.Pid)
		time.Sleep(time.Hour)
		return 0
	default:
		fmt.Println("helper: unknown mode", mode)
		return 2
	}
}

// helperConfig runs this test binary as a helper server in mode.
func helperConfig(t *testing.T, mode string, port int) Config {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Name:   "helper-" + mode,
		Binary: exe,
		Args:   []string{"-test.run=^$"},
		Env:    []string{helperEnv + "=" + mode, "HELPER_PORT=" + strconv.Itoa(port)},
	}
}
