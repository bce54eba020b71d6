// Package showcmd is gbc-backup-show: the whole record of one backup.
package showcmd

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/render"
)

const description = `Shows everything the catalog records about one backup: status (and error),
PostgreSQL version, system identifier, timeline, begin/end time, LSN and WAL,
sizes, tablespaces, parts with their checksums, backup_label, keep and tags.

BACKUP_ID is an id, a backup name, latest or oldest. --format json prints the
record exactly as stored in backup.json (see the README for its schema).

Examples:
  gbc-backup-show s3://bucket/pg main latest
  gbc-backup-show --format json s3://bucket/pg main 20261124T214842Z`

// Command returns gbc-backup-show.
func Command() *cli.Command {
	return &cli.Command{
		Name:        "gbc-backup-show",
		Usage:       "show the whole record of a backup",
		ArgsUsage:   "STORE_URL SERVER_NAME BACKUP_ID",
		Description: description,
		MinArgs:     3,
		MaxArgs:     3,
		Flags:       append(cli.StoreFlags(), render.FormatFlag()),
		Action:      run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server, ref := e.Args[0], e.Args[1], e.Args[2]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	format := e.String("format")
	if err := render.CheckFormat(format); err != nil {
		return err
	}
	// Monitoring waits on this: a stalled store must end it with an
	// error within --retry-timeout, never hang it.
	ctx, cancel := e.Bound(ctx)
	defer cancel()
	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := catalog.Find(ctx, s, catalog.Layout{Server: server}, ref, nil)
	if err != nil {
		return err
	}
	if format == "json" {
		data, err := catalog.Encode(b)
		if err != nil {
			return err
		}
		_, err = e.Stdout.Write(data)
		return err
	}
	return WriteText(e.Stdout, b)
}

// WriteText prints a record for people.
func WriteText(w io.Writer, b *catalog.Backup) error {
	tw := render.Table(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s:\t%s\n", k, v)
		}
	}
	fmt.Fprintf(tw, "Backup %s\n", b.ID)
	row("Name", b.Name)
	row("Server", b.Server)
	row("Status", string(b.Status))
	row("Error", b.Error)
	pgv := b.PGVersionString
	if b.PGVersion != 0 {
		pgv = strings.TrimSpace(fmt.Sprintf("%s (%d)", pgv, b.PGVersion))
	}
	row("PostgreSQL", pgv)
	row("System identifier", b.SystemIdentifier)
	row("Timeline", nonZero(int64(b.Timeline)))
	row("Begin", join(render.Time(b.BeginTime), b.BeginLSN, b.BeginWAL))
	row("End", join(render.Time(b.EndTime), b.EndLSN, b.EndWAL))
	if !b.BeginTime.IsZero() && !b.EndTime.IsZero() {
		row("Duration", b.EndTime.Sub(b.BeginTime).String())
	}
	row("Method", b.Method)
	row("Type", b.Kind())
	comp := b.Compression
	if b.CompressionLevel != 0 {
		comp += fmt.Sprintf(" (level %d)", b.CompressionLevel)
	}
	row("Compression", comp)
	row("Encryption", b.Encryption)
	size := render.Bytes(b.DataSize)
	if b.StoredSize > 0 {
		size += fmt.Sprintf(", stored %s", render.Bytes(b.StoredSize))
		if b.DataSize > 0 {
			size += fmt.Sprintf(" (%.1f%%)", 100*float64(b.StoredSize)/float64(b.DataSize))
		}
	}
	row("Size", size)
	row("Files", nonZero(b.Files))
	row("Keep", b.Keep)
	if len(b.Tags) > 0 {
		row("Tags", render.Tags(b.Tags))
	}
	row("Parent", b.ParentID)
	row("Label", b.Label)
	row("Data directory", b.DataDirectory)
	if b.FromStandby {
		row("From standby", "yes")
	}
	row("Host", b.Host)
	row("gbc version", b.GBCVersion)
	if !b.Heartbeat.IsZero() {
		row("Heartbeat", render.Time(b.Heartbeat))
	}
	row("Manifest", join(b.ManifestKey, b.ManifestSHA256))
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(b.Tablespaces) > 0 {
		fmt.Fprintln(w, "Tablespaces:")
		tw = render.Table(w)
		fmt.Fprintln(tw, "  NAME\tOID\tLOCATION\tSIZE")
		for _, t := range b.Tablespaces {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Name, t.OID, t.Location, render.Bytes(t.Size))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(b.Parts) > 0 {
		fmt.Fprintln(w, "Parts:")
		tw = render.Table(w)
		fmt.Fprintln(tw, "  KEY\tTABLESPACE\tSIZE\tSTORED\tFILES\tSHA256")
		for _, p := range b.Parts {
			ts := p.Tablespace
			if ts == "" {
				ts = "pgdata"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", p.Key, ts, render.Bytes(p.Size), render.Bytes(p.StoredSize), p.Files, p.SHA256)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, s := range b.Snapshots {
		fmt.Fprintf(w, "Snapshot %s %s: disk %s mounted at %s (%d GiB)\n", s.Provider, s.ID, s.Disk, s.MountPoint, s.SizeGiB)
	}
	block(w, "backup_label", b.BackupLabel)
	block(w, "tablespace_map", b.TablespaceMap)
	return nil
}

func block(w io.Writer, title, text string) {
	if text == "" {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

func join(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" && p != "-" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "  ")
}

func nonZero(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}
