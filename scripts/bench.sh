#!/usr/bin/env bash
# make bench: gbc side by side with barman-cloud and pgBackRest, on this
# machine, against one local MinIO server (issue 5). Prints a Markdown table
# and writes it, with a JSON file, to bench/results/DATE-SCALE.{md,json}.
#
#   make bench                                  # --scale quick, every tool
#   make bench BENCH_ARGS='--scale full'        # the issue's sizes (~20 min on 2 cores)
#   make bench BENCH_ARGS='--tools gbc,pgbackrest --scenarios backup'
#   bash scripts/bench.sh --help                # every option
#
# Needs in PATH: ./bin (make build), minio ($GBC_TOOLS/bin, from
# scripts/test-deps.sh) and PostgreSQL 15's pg_config. Installs the peers
# (Debian barman-cli-cloud and pgbackrest) when they are missing and it runs
# as root. The harness is the Go command bench/cmd/gbc-bench.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "bench: $*" >&2; }

wants_peers=1
for a in "$@"; do
  case $a in
    --tools=gbc | gbc) wants_peers=0 ;;
  esac
done

missing=()
command -v barman-cloud-backup >/dev/null 2>&1 || missing+=(barman-cli-cloud)
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
if [ $wants_peers = 1 ] && [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    log "missing ${missing[*]}: install them with apt-get (needs root), or pass --tools gbc"
    exit 1
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/gbc-bench" ./bench/cmd/gbc-bench
"$tmp/gbc-bench" "$@"
