package e2e

import (
	"testing"

	"github.com/gbc-backup/gbc/e2e/harness"
)

// TestMain stops the servers shared by the tests of this package (see
// harness.Main). It is the only TestMain of package e2e.
func TestMain(m *testing.M) { harness.Main(m) }
