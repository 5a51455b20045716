package hub

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves goroutines behind: every
// connection's reader and writer, the broadcast loop and the event
// subscribers must end when their connection or the Heatmap is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
