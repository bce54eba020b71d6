// Package providers links every SDK provider of package cloud (s3, gcs,
// azure) into a program that imports it, blank: the full gbc binary and the
// tests that open every kind of store. A program that leaves it out opens
// file:// stores only (see cloud.Provider).
package providers

import (
	// Each registers itself with cloud.Open in its init function.
	_ "github.com/gbc-backup/gbc/cloud/azure"
	_ "github.com/gbc-backup/gbc/cloud/gcs"
	_ "github.com/gbc-backup/gbc/cloud/s3"
)
