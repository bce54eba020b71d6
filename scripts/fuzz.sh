#!/usr/bin/env bash
# Runs every Go fuzz target of the project for a bounded time each
# (FUZZTIME, default 15s), after `go test` has run their seed corpora. A
# failing input is written under the package's testdata/fuzz/ by go test:
# commit it with the fix, so that it stays a regression test.
#
#   scripts/fuzz.sh            every target
#   FUZZTIME=1m scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-15s}
# Each package's targets, found in its test files, one at a time (go test
# fuzzes one target per run).
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' ./... | grep -v /e2e); do
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$pkg"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $target in ${pkg#"$PWD"/} for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/gbc-fuzz.$$ 2>&1 || { cat /tmp/gbc-fuzz.$$; rm -f /tmp/gbc-fuzz.$$; exit 1; }
    tail -n 1 /tmp/gbc-fuzz.$$
  done
done
rm -f /tmp/gbc-fuzz.$$
