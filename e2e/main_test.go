package e2e_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the coordinator, the native worker and the browser
// drivers leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
