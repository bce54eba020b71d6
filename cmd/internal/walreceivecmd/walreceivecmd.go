// Package walreceivecmd is gbc-wal-receive: a long-running process that
// streams WAL from PostgreSQL into the store over a replication slot, so
// that a server's loss costs seconds of commits instead of a segment.
package walreceivecmd

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/metrics"
	"github.com/gbc-backup/gbc/wal"
	"github.com/gbc-backup/gbc/walreceive"
)

const description = `Streams WAL from the PostgreSQL server that --dbname (or the libpq PG*
environment) names, over the replication protocol on the physical replication
slot --slot, into SERVER_NAME/wals/ in the store, as it is written. It runs
until stopped (SIGTERM or SIGINT: it stores the segment in progress, confirms
it to the server and exits 0).

The segment in progress is stored as SEGMENT.partial every --flush-interval
and whenever --flush-size bytes have arrived, replacing the previous one. A
completed segment is stored exactly as gbc-wal-archive stores it, so an
archive_command can run beside the receiver. The slot is confirmed only up to
what is stored: a receiver killed, a server restarted or a store down loses
nothing, since the slot keeps the WAL on the server until it is stored (watch
pg_wal's size: set max_slot_wal_keep_size). Connection losses are retried
with backoff; a fatal error (the slot is gone, the server removed WAL the
receiver needs, another cluster) exits non-zero with one line.

The role needs the REPLICATION attribute and a "replication" line in
pg_hba.conf, as for pg_receivewal. Credentials for the store come from the
environment, as for archive_command (systemd: EnvironmentFile=).

Examples:
  gbc-wal-receive --dbname "host=db1 user=replicator" --slot gbc --create-slot s3://bucket/pg main
  PGHOST=db1 PGUSER=replicator gbc-wal-receive --flush-interval 5s --format json gs://bucket/pg main

Exit codes: 0 stopped by a signal after storing and confirming; 1 a fatal
error (the slot is gone, WAL removed, another system identifier); 2 bad
option or argument; 3 the store cannot be used; 4 different content is
already stored under a segment's name.`

// Command returns gbc-wal-receive.
func Command() *cli.Command {
	flushSize := cli.String("flush-size", "also store the segment in progress whenever this many bytes arrived since the last store (K, M: powers of 1024)", "4M")
	flushSize.Action = func(_ *ucli.Context, v string) error {
		_, err := parseSize(v)
		return err
	}
	return &cli.Command{
		Name:        "gbc-wal-receive",
		Usage:       "stream WAL into the store over a replication slot (long-running)",
		ArgsUsage:   "STORE_URL SERVER_NAME",
		Description: description,
		MinArgs:     2,
		MaxArgs:     2,
		Flags: append(append(cli.StoreFlags(), cli.CompressionFlags()...),
			&ucli.StringFlag{Name: "dbname", Aliases: []string{"d"}, Usage: "libpq connection string or URI (default: the PG* environment)", EnvVars: []string{"GBC_DBNAME"}},
			cli.String("slot", "physical replication slot to stream from", "gbc"),
			cli.Bool("create-slot", "create the slot if it does not exist"),
			cli.Duration("flush-interval", "store the segment in progress as .partial this often: the most commits a loss of the server costs", walreceive.DefaultFlushInterval, 100*time.Millisecond, "a duration of at least 100ms, such as 1s or 10s"),
			flushSize,
			cli.String("spool-dir", "directory for the segment in progress (default: one under the system's temporary directory)", ""),
			cli.String("format", "status output: text (state changes on stderr) or json (a status line on stdout at every state change and store)", "text"),
			cli.String("metrics-file", "write the receive lag and last store time to this Prometheus textfile (*.prom) after every store", ""),
		),
		Action: run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server := e.Args[0], e.Args[1]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	format := e.String("format")
	if format != "text" && format != "json" {
		return cli.Usagef("--format %q: give text or json", format)
	}
	size, err := parseSize(e.String("flush-size"))
	if err != nil {
		return err
	}
	codec, level, err := e.Codec()
	if err != nil {
		return err
	}
	slot := e.String("slot")
	spool := e.String("spool-dir")
	if spool == "" {
		spool = filepath.Join(os.TempDir(), "gbc-wal-receive-"+server+"-"+slot)
	}
	cli.Background()
	store, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer store.Close()
	onStatus := statusOutput(e, format, server)
	err = walreceive.Run(ctx, walreceive.Options{
		ConnString:    e.String("dbname"),
		Slot:          slot,
		CreateSlot:    e.Bool("create-slot"),
		Store:         store,
		Layout:        catalog.Layout{Server: server},
		Codec:         codec,
		Level:         level,
		FlushInterval: e.Duration("flush-interval"),
		FlushSize:     size,
		SpoolDir:      spool,
		Log:           e.Log.Slog(),
		OnStatus:      onStatus,
	})
	if errors.Is(err, wal.ErrConflict) {
		return cli.Exit(cli.ExitConflict, err)
	}
	return err
}

// statusOutput prints JSON status lines and writes the metrics file.
func statusOutput(e *cli.Env, format, server string) func(walreceive.Status) {
	enc := json.NewEncoder(e.Stdout)
	mf := e.String("metrics-file")
	return func(st walreceive.Status) {
		if format == "json" {
			_ = enc.Encode(st)
		}
		if mf != "" {
			if err := (metrics.File{Path: mf}).Merge(server, samples(st)); err != nil {
				e.Log.Debugf("metrics file %s not written: %v", mf, err)
			}
		}
	}
}

// samples are the receiver's metrics.
func samples(st walreceive.Status) []metrics.Sample {
	l := map[string]string{"slot": st.Slot}
	up := 0.0
	if st.State == walreceive.StateStreaming {
		up = 1
	}
	out := []metrics.Sample{
		{Name: "gbc_wal_receive_streaming", Help: "1 while gbc-wal-receive streams, 0 while it reconnects or after it stopped", Server: st.Server, Labels: l, Value: up},
		{Name: "gbc_wal_receive_lag_bytes", Help: "WAL the server has written that is not yet stored, in bytes", Server: st.Server, Labels: l, Value: float64(st.LagBytes)},
		{Name: "gbc_wal_receive_lag_seconds", Help: "how long the oldest received byte not yet stored has waited", Server: st.Server, Labels: l, Value: st.LagSeconds},
	}
	if !st.LastStored.IsZero() {
		out = append(out, metrics.Sample{Name: "gbc_wal_receive_last_store_timestamp_seconds", Help: "when gbc-wal-receive last stored WAL (Unix time)", Server: st.Server, Labels: l, Value: float64(st.LastStored.UnixNano()) / 1e9})
	}
	return out
}

// parseSize reads --flush-size: a size as cli.ParseSize reads it, from
// 64K to 1T.
func parseSize(v string) (int64, error) {
	n, err := cli.ParseSize(v)
	if err != nil || n > 1<<40 {
		return 0, cli.Usagef("--flush-size %q: give a size such as 4M or 512K (K, M, G: powers of 1024)", v)
	}
	if n < 64<<10 {
		return 0, cli.Usagef("--flush-size %q: give at least 64K", v)
	}
	return n, nil
}
