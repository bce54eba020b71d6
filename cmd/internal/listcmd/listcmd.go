// Package listcmd is gbc-backup-list: one line per backup of a server, as a
// table or as JSON for monitoring.
package listcmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/render"
)

const description = `Lists every backup of SERVER_NAME in the store, oldest first, whatever its
status: DONE backups are restorable; STARTED ones are running (or their
process died); FAILED ones say why in gbc-backup-show.

--format json prints {"server": ..., "backups": [...]}, a schema that later
releases only extend (see the README).

Examples:
  gbc-backup-list s3://bucket/pg main
  gbc-backup-list --format json gs://bucket/pg main | jq -r '.backups[-1].id'`

// Command returns gbc-backup-list.
func Command() *cli.Command {
	return &cli.Command{
		Name:        "gbc-backup-list",
		Usage:       "list the backups of a server",
		ArgsUsage:   "STORE_URL SERVER_NAME",
		Description: description,
		MinArgs:     2,
		MaxArgs:     2,
		Flags:       append(cli.StoreFlags(), render.FormatFlag()),
		Action:      run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server := e.Args[0], e.Args[1]
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
	layout := catalog.Layout{Server: server}
	backups, err := catalog.Summaries(ctx, s, layout)
	if err != nil {
		return err
	}
	if len(backups) == 0 {
		// A server with WAL but no backup yet is listed as empty; a name
		// with nothing under it is a mistake, and says so (exit 5).
		if err := catalog.CheckServer(ctx, s, layout); err != nil {
			return err
		}
	}
	if format == "json" {
		return WriteJSON(e.Stdout, server, backups)
	}
	if len(backups) == 0 {
		e.Log.Infof("no backups of server %s in %s", server, storeURL)
		return nil
	}
	return WriteTable(e.Stdout, backups)
}

// Summary is one backup in `gbc-backup-list --format json`. Its fields are
// a documented, stable schema: later releases add fields, never rename or
// remove them. Every key is always present; absent values are "", null
// (times) or 0.
type Summary struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Status           catalog.Status    `json:"status"`
	Error            string            `json:"error"`
	BeginTime        *time.Time        `json:"begin_time"`
	EndTime          *time.Time        `json:"end_time"`
	BeginLSN         string            `json:"begin_lsn"`
	EndLSN           string            `json:"end_lsn"`
	BeginWAL         string            `json:"begin_wal"`
	EndWAL           string            `json:"end_wal"`
	Timeline         uint32            `json:"timeline"`
	PGVersion        int               `json:"pg_version"`
	SystemIdentifier string            `json:"system_identifier"`
	Method           string            `json:"method"`
	Compression      string            `json:"compression"`
	DataSize         int64             `json:"data_size"`
	StoredSize       int64             `json:"stored_size"`
	Keep             string            `json:"keep"`
	Tags             map[string]string `json:"tags"`
	Type             string            `json:"type"`
	ParentID         string            `json:"parent_id"`
}

// Listing is the whole JSON document.
type Listing struct {
	Server  string    `json:"server"`
	Backups []Summary `json:"backups"`
}

// Summarize maps a record onto the listing schema.
func Summarize(b *catalog.Backup) Summary {
	tags := b.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return Summary{
		ID: b.ID, Name: b.Name, Status: b.Status, Error: b.Error,
		BeginTime: timePtr(b.BeginTime), EndTime: timePtr(b.EndTime),
		BeginLSN: b.BeginLSN, EndLSN: b.EndLSN, BeginWAL: b.BeginWAL, EndWAL: b.EndWAL,
		Timeline: b.Timeline, PGVersion: b.PGVersion, SystemIdentifier: b.SystemIdentifier,
		Method: b.Method, Compression: b.Compression,
		DataSize: b.DataSize, StoredSize: b.StoredSize,
		Keep: b.Keep, Tags: tags, Type: b.Kind(), ParentID: b.ParentID,
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// WriteJSON prints the listing document.
func WriteJSON(w io.Writer, server string, backups []*catalog.Backup) error {
	l := Listing{Server: server, Backups: make([]Summary, 0, len(backups))}
	for _, b := range backups {
		l.Backups = append(l.Backups, Summarize(b))
	}
	return render.JSON(w, l)
}

// WriteTable prints one aligned line per backup.
func WriteTable(w io.Writer, backups []*catalog.Backup) error {
	tw := render.Table(w)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tBEGIN\tEND\tBEGIN_WAL\tEND_WAL\tSIZE\tSTORED\tKEEP\tTAGS\tTYPE\tPARENT")
	for _, b := range backups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			b.ID, render.Dash(b.Name), b.Status, render.Time(b.BeginTime), render.Time(b.EndTime),
			render.Dash(b.BeginWAL), render.Dash(b.EndWAL), render.Bytes(b.DataSize), render.Bytes(b.StoredSize), render.Dash(b.Keep), render.Tags(b.Tags),
			b.Kind(), render.Dash(b.ParentID))
	}
	return tw.Flush()
}
