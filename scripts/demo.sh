#!/usr/bin/env bash
# make demo: a point-in-time recovery drill on a throwaway PostgreSQL cluster.
#
# It initdb's a cluster, archives its WAL with gbc-wal-archive into a file://
# store, loads pgbench data, takes a backup with gbc-backup, writes more,
# notes the time, drops a table, then restores to that time with gbc-restore
# into a new directory, starts it, and shows the table and its rows back.
# Everything lives in one temporary directory, removed at the end (set
# GBC_DEMO_KEEP=1 to keep it). As root, PostgreSQL and gbc run as an
# unprivileged user (postgres, or a gbcdemo system user created for it).
#
#   GBC_DEMO_SCALE   pgbench scale (default 10, about 150 MB)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scale=${GBC_DEMO_SCALE:-10}

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# PostgreSQL's programs: pg_config's bindir, else whatever PATH has.
pgbin=""
if command -v pg_config >/dev/null 2>&1; then pgbin=$(pg_config --bindir); fi
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  initdb_path=$(command -v initdb || true)
  [ -n "$initdb_path" ] || die "PostgreSQL server programs not found: install postgresql-15 (initdb, pg_ctl, pgbench, psql)"
  pgbin=$(dirname "$(readlink -f "$initdb_path")")
fi
for p in initdb pg_ctl pgbench psql; do
  [ -x "$pgbin/$p" ] || die "$pgbin/$p not found: install postgresql-15 and postgresql-contrib"
done
[ -x "$repo/bin/gbc" ] || die "$repo/bin/gbc not found: run make build (make demo does)"

# Who runs PostgreSQL: it refuses root.
runas=()
if [ "$(id -u)" = 0 ]; then
  user=postgres
  if ! id -u "$user" >/dev/null 2>&1; then
    user=gbcdemo
    id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  runas=(runuser -u "$user" --)
fi
as_pg() { "${runas[@]}" env -C "$work" "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gbc-demo.XXXXXX")
chmod 0755 "$work"
primary=$work/primary
restored=$work/restored
store="file://$work/store"
server=demo

cleanup() {
  set +e
  for d in "$restored" "$primary"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
  done
  if [ -n "${GBC_DEMO_KEEP:-}" ]; then
    echo "demo: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The gbc binaries, where the unprivileged user can run them (the checkout
# may sit in a private home directory).
cp -a "$repo/bin" "$work/bin"
chmod -R a+rX "$work/bin"
bin=$work/bin
mkdir -p "$work/store"
[ ${#runas[@]} -eq 0 ] || chown -R "$user" "$work"

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free TCP port found"
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

port=$(free_port)
psql_p() { as_pg "$pgbin/psql" -X -q -At -h "$work" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

say "initdb a throwaway PostgreSQL cluster ($("$pgbin/postgres" --version))"
as_pg "$pgbin/initdb" -D "$primary" -U postgres -A trust --no-sync >/dev/null
cat >>"$primary/postgresql.conf" <<EOF
# gbc demo
listen_addresses = ''
port = $port
unix_socket_directories = '$work'
wal_level = replica
archive_mode = on
archive_command = '$bin/gbc-wal-archive $store $server %p'
EOF
echo "archive_command = '$bin/gbc-wal-archive $store $server %p'"
as_pg "$pgbin/pg_ctl" -D "$primary" -l "$work/primary.log" -w start >/dev/null

say "pgbench -i -s $scale"
as_pg "$pgbin/pgbench" -q -i -s "$scale" -h "$work" -p "$port" -U postgres postgres 2>&1 | tail -n 1

say "gbc-backup $store $server"
t0=$(now)
as_pg env PGHOST="$work" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres \
  "$bin/gbc-backup" --name before-the-mistake "$store" "$server"
t1=$(now)
backup_s=$(elapsed "$t0" "$t1")
as_pg "$bin/gbc-backup-list" "$store" "$server"

say "more writes after the backup (pgbench -T 5)"
as_pg "$pgbin/pgbench" -T 5 -c 2 -h "$work" -p "$port" -U postgres postgres 2>&1 | grep -E '^(number of transactions actually processed|tps)' || true

rows=$(psql_p -c "SELECT count(*) FROM pgbench_accounts")
balance=$(psql_p -c "SELECT sum(abalance) FROM pgbench_accounts")
target=$(psql_p -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
echo "pgbench_accounts: $rows rows, sum(abalance) = $balance at $target"
sleep 1

say "the mistake: DROP TABLE pgbench_accounts"
psql_p -c "DROP TABLE pgbench_accounts"
seg=$(psql_p -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 120); do
  last=$(psql_p -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
  [[ "$last" > "$seg" || "$last" == "$seg" ]] && break
  sleep 0.5
done
echo "WAL up to $seg archived (last archived: $last)"

say "gbc-restore --target-time '$target' $store $server auto $restored"
t0=$(now)
as_pg "$bin/gbc-restore" --target-time "$target" --target-action promote --disable-archiving \
  "$store" "$server" auto "$restored"
t1=$(now)
restore_s=$(elapsed "$t0" "$t1")

say "start the restored cluster and let it replay WAL up to the target"
port2=$(free_port)
t0=$(now)
as_pg "$pgbin/pg_ctl" -D "$restored" -l "$work/restored.log" -o "-p $port2 -c unix_socket_directories=$work" -w -t 300 start >/dev/null
psql_r() { as_pg "$pgbin/psql" -X -q -At -h "$work" -p "$port2" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 1 600); do
  [ "$(psql_r -c 'SELECT pg_is_in_recovery()')" = f ] && break
  sleep 0.2
done
t1=$(now)
replay_s=$(elapsed "$t0" "$t1")
[ "$(psql_r -c 'SELECT pg_is_in_recovery()')" = f ] || die "the restored cluster did not finish recovery; see $work/restored.log"

got_rows=$(psql_r -c "SELECT count(*) FROM pgbench_accounts")
got_balance=$(psql_r -c "SELECT sum(abalance) FROM pgbench_accounts")
echo "restored pgbench_accounts: $got_rows rows, sum(abalance) = $got_balance"

say "result"
printf '%-34s %s s\n' "backup (gbc-backup):" "$backup_s" "restore (gbc-restore):" "$restore_s" "WAL replay to the target + start:" "$replay_s"
if [ "$got_rows" = "$rows" ] && [ "$got_balance" = "$balance" ]; then
  echo "OK: the dropped table is back with all $rows rows, as they were at $target."
else
  die "MISMATCH: expected $rows rows and balance $balance, got $got_rows and $got_balance"
fi
