package consul

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// backend, session and watch the tests open is closed by then.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
