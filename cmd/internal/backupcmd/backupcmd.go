// Package backupcmd is gbc-backup: take a base backup of a PostgreSQL
// cluster into a store.
package backupcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/backup"
	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/pg"
)

const description = `Takes a base backup of the PostgreSQL cluster that --dbname (or the libpq
environment: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE)
connects to, and stores it under STORE_URL/SERVER_NAME/base/<id>/, where the
id is the start time in UTC (20261124T214842Z). It prints the id on stdout
(or the whole record with --format json).

--method local (the default when the data directory is readable on this
host) reads the files from disk between pg_backup_start and pg_backup_stop;
--method stream has the server send them over the replication protocol
(BASE_BACKUP), for hosts where gbc cannot read the data directory; the role
then needs the REPLICATION attribute and a "replication" line in pg_hba.conf.

Files are tarred into parts of at most --max-archive-size, compressed on
--jobs cores and uploaded at the same time. A PostgreSQL backup_manifest is
stored with the backup, so that pg_verifybackup checks a restored copy.

The server must archive its WAL to the same store and server name
(archive_command = 'gbc-wal-archive STORE_URL SERVER_NAME %p'): a backup is
DONE only once the last WAL segment it needs is in the store, so that every
DONE backup can be restored from the store alone. The record
base/<id>/backup.json is written last; a failed backup leaves a FAILED
record (or, if killed, a STARTED one), never a DONE one.

Examples:
  gbc-backup s3://bucket/pg main
  gbc-backup --dbname "host=db1 user=backup" --name before-upgrade --tags ticket=42 gs://bucket main
  gbc-backup --method stream --dbname "host=db1 user=replicator" azblob://backups/pg main`

// Command returns gbc-backup.
func Command() *cli.Command {
	flags := append(cli.StoreFlags(), cli.CompressionFlags()...)
	flags = append(flags, cli.JobsFlag(),
		&ucli.StringFlag{Name: "dbname", Aliases: []string{"d"}, Usage: "libpq connection string or URI (default: the PG* environment)", EnvVars: []string{"GBC_DBNAME"}},
		cli.String("method", "local (read the data directory here) or stream (BASE_BACKUP over replication); default: local when the data directory is readable here", ""),
		cli.String("type", "full, incr (the blocks changed since the newest backup of the server) or diff (the blocks changed since the newest full backup)", "full"),
		cli.String("parent", "for --type incr or diff: the parent backup (an id or a name) instead of the newest one", ""),
		cli.String("name", "a name for the backup, unique for the server, accepted wherever a backup id is: one word of letters, digits, ., _ and -, not starting with . or -, at most 64 characters", ""),
		cli.String("tags", "key=value pairs, comma-separated, stored in the record", ""),
		cli.String("max-archive-size", "largest part before compression (bytes, or with K, M, G, T: powers of 1024)", "1G"),
		cli.String("checkpoint", "fast (an immediate checkpoint at the start) or spread (PostgreSQL's checkpoint_completion_target)", "fast"),
		cli.Duration("wal-timeout", "wait this long for the backup's last WAL segment to reach the store (0: do not check the store)",
			5*time.Minute, 0, "a duration such as 90s, 5m or 1h (0: do not check the store)"),
		cli.String("format", "what to print at the end: text (the backup id) or json (the record)", "text"),
	)
	flags = append(flags, snapshotFlags()...)
	return &cli.Command{
		Name:        "gbc-backup",
		Usage:       "take a base backup into a store",
		ArgsUsage:   "STORE_URL SERVER_NAME",
		Description: description + snapshotDescription,
		MinArgs:     2,
		MaxArgs:     2,
		Flags:       flags,
		Action:      run,
	}
}

// Store upload tuning for backups. The store's defaults (16 MiB x 4 parts
// in flight, about 7 x 16 MiB per Put on S3) suit single objects; a backup
// has up to two Puts at once next to its compression buffers, and 8 MiB
// parts keep all of it under about 150 MiB while 4 parts in flight still
// fill a link.
const (
	uploadPartSize    = 8 << 20
	uploadConcurrency = 4
)

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server := e.Args[0], e.Args[1]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	codec, level, err := e.Codec()
	if err != nil {
		return err
	}
	maxPart, err := maxArchiveSize(e.String("max-archive-size"))
	if err != nil {
		return err
	}
	tags, err := parseTags(e.String("tags"))
	if err != nil {
		return cli.Usagef("--tags: %v", err)
	}
	method := e.String("method")
	switch method {
	case backup.MethodAuto, backup.MethodLocal, backup.MethodStream:
	default:
		return cli.Usagef("--method %q: use local or stream", method)
	}
	typ := e.String("type")
	switch typ {
	case catalog.TypeFull, catalog.TypeIncr, catalog.TypeDiff:
	default:
		return cli.Usagef("--type %q: use full, incr or diff", typ)
	}
	if e.String("parent") != "" && typ == catalog.TypeFull {
		return cli.Usagef("--parent needs --type incr or --type diff")
	}
	var spread bool
	switch e.String("checkpoint") {
	case "fast":
	case "spread":
		spread = true
	default:
		return cli.Usagef("--checkpoint %q: use fast or spread", e.String("checkpoint"))
	}
	format := e.String("format")
	if format != "text" && format != "json" {
		return cli.Usagef("--format %q: use text or json", format)
	}
	if err := backup.CheckName(e.String("name")); err != nil {
		return cli.Exit(cli.ExitUsage, err)
	}

	s, err := openStore(ctx, e, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()

	o := backup.Options{
		Store: s, Server: server, ConnString: e.String("dbname"), Method: method,
		Name: e.String("name"), Tags: tags,
		Type: typ, Parent: e.String("parent"),
		Codec: codec, Level: level, Jobs: e.Jobs(), MaxPartSize: maxPart,
		Spread: spread, WALTimeout: e.Duration("wal-timeout"),
		GBCVersion: cli.Version,
		Log:        e.Log.Slog(),
		Events:     progressEvents(os.Stderr, e.Bool("quiet")),
	}
	tuneGC()
	start := time.Now()
	b, err := runBackup(ctx, e, o)
	if err != nil {
		return classify(err)
	}
	el := time.Since(start)
	kind := b.Kind()
	if b.ParentID != "" {
		kind += " on " + b.ParentID
	}
	e.Log.Infof("backup %s (%s) DONE in %s: %s read, %s stored (%.1f%%), %d parts, %d files, %s/s; WAL %s to %s",
		b.ID, kind, el.Round(100*time.Millisecond), mib(b.DataSize), mib(b.StoredSize), pct(b.StoredSize, b.DataSize),
		len(b.Parts), b.Files, mib(int64(float64(b.DataSize)/max(el.Seconds(), 0.001))), b.BeginWAL, b.EndWAL)
	if format == "json" {
		out, err := json.MarshalIndent(b, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.Stdout, "%s\n", out)
		return err
	}
	_, err = fmt.Fprintln(e.Stdout, b.ID)
	return err
}

// openStore is cli's OpenStore with upload sizes chosen for backups.
func openStore(ctx context.Context, e *cli.Env, rawURL string) (cloud.Store, error) {
	return e.OpenStore(ctx, rawURL, func(o *cloud.Options) {
		o.PartSize, o.Concurrency = uploadPartSize, uploadConcurrency
	})
}

// classify maps the backup's refusals to the conflict exit code, and an
// unsupported server to a plain failure.
func classify(err error) error {
	switch {
	case errors.Is(err, backup.ErrRefused):
		return cli.Exit(cli.ExitConflict, err)
	case errors.Is(err, pg.ErrUnsupportedVersion):
		return cli.Exit(cli.ExitFailure, err)
	}
	return err
}

// Garbage collector settings for a backup. The pipeline's chunk buffers,
// the compressors and the store's upload buffers are a fixed working set of
// about 100 MiB, which lives as long as the backup; what comes and goes is
// small per-file garbage (a stat, a header, a manifest line), and a backup
// of 200,000 files makes a lot of it. With Go's default (GOGC=100) the heap
// then grows to twice the working set before each collection, so peak RSS
// would depend on the file count. Collecting when the heap is 10% above the
// live data, which costs a few milliseconds per collection since the
// buffers hold no pointers, keeps peak RSS where a backup of a few big
// files puts it (measured: 200,000 files to S3 131 MiB, a pgbench -s 50
// database 121 MiB, with the same CPU time as GOGC=100); the soft limit is
// a backstop.
const (
	gcPercent   = 10
	memoryLimit = 160 << 20
)

// tuneGC applies gcPercent and memoryLimit, unless the user chose their
// own with GOGC or GOMEMLIMIT.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// maxArchiveSize reads --max-archive-size, refusing as a usage error what
// the backup would refuse only after connecting to the server.
func maxArchiveSize(s string) (int64, error) {
	n, err := cli.ParseSize(s)
	if err == nil && n < backup.MinPartSize {
		err = fmt.Errorf("%q is too small", s)
	}
	if err != nil {
		return 0, cli.Usagef("--max-archive-size: %v: give a size of at least 1M, such as 1G or 512M (K, M, G, T: powers of 1024)", err)
	}
	return n, nil
}

// parseTags reads "k=v,k2=v2".
func parseTags(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	tags := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return tags, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
