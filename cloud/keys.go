package cloud

import "github.com/gbc-backup/gbc/cloud/internal/contract"

// The key, prefix, metadata and range rules live in internal/contract,
// shared with the SDK providers, which sit outside this package so that a
// binary can leave them out (see Provider). These names keep this
// package's own stores short to read.
var errInvalid = contract.ErrInvalid

func checkKey(key string) error                { return contract.CheckKey(key) }
func checkPrefix(prefix string) error          { return contract.CheckPrefix(prefix) }
func checkMetadata(md map[string]string) error { return contract.CheckMetadata(md) }
func checkRange(offset int64) error            { return contract.CheckRange(offset) }
