package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
)

// events collects what a restore reports, from any goroutine.
type events struct {
	mu  sync.Mutex
	got []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

// saved stores f's backup record, so that Restore can find it.
func (f *fixture) saved(t *testing.T) *fixture {
	t.Helper()
	if err := catalog.Save(context.Background(), f.store, f.layout, f.backup); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) request(dest string) Request {
	return Request{Store: f.store, Server: f.layout.Server, Backup: "latest", Dest: dest, Jobs: 2,
		WALRestore: "/bin/gbc-wal-restore", StoreArgs: []string{"--endpoint-url", "http://minio:9000"}, StoreURL: "s3://b/pg"}
}

func TestRestoreReportsWhatItDid(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	f.backup.Name, f.backup.FromStandby = "nightly", true
	f.saved(t)
	dest := filepath.Join(tmp, "data")
	req := f.request(dest)
	req.Backup = "nightly"
	var ev events
	req.Events = ev.add
	rep, err := Restore(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Backup.ID != f.backup.ID || rep.Dest != dest || rep.Files == nil || rep.Files.Files == 0 || len(rep.Files.Tablespaces) != 1 || rep.Snapshots != nil {
		t.Fatalf("report %+v", rep)
	}
	rc := rep.Recovery
	if rc == nil || rc.BackupID != f.backup.ID || rc.Standby ||
		rc.RestoreCommand() != "/bin/gbc-wal-restore --endpoint-url http://minio:9000 s3://b/pg main %f %p" {
		t.Fatalf("recovery %+v", rc)
	}
	if _, err := os.Stat(filepath.Join(dest, recoverySignal)); err != nil {
		t.Fatal(err)
	}
	// In order: the standby notice, the start, each part, the end of the
	// writes (the parts' order is the restore's).
	parts := 0
	var kinds []string
	for _, e := range ev.got {
		switch e := e.(type) {
		case FromStandby:
			kinds = append(kinds, "standby:"+e.Backup.ID)
		case Started:
			if e.Snapshot || e.Dest != dest {
				t.Errorf("started %+v", e)
			}
			kinds = append(kinds, "started:"+e.Backup.Name)
		case PartRestored:
			parts++
		case Written:
			if e.Files != rep.Files.Files || e.Bytes != rep.Files.Bytes {
				t.Errorf("written %+v, report %+v", e, rep.Files)
			}
			kinds = append(kinds, "written")
		default:
			t.Errorf("unexpected event %#v", e)
		}
	}
	if got := strings.Join(kinds, " "); got != "standby:"+f.backup.ID+" started:nightly written" || parts != len(f.backup.Parts) {
		t.Errorf("events %s, %d parts restored of %d", got, parts, len(f.backup.Parts))
	}
}

// Every refusal is in exactly one class, with the message the operator
// reads, and leaves the destination alone.
func TestRestoreClassifiesRefusals(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	f.backup.EndTime = time.Date(2026, 11, 24, 21, 5, 0, 0, time.UTC)
	f.saved(t)
	failed := *f.backup
	failed.ID, failed.Status = "20261124T220000Z", catalog.StatusFailed
	noWAL := *f.backup
	noWAL.ID, noWAL.BeginWAL, noWAL.EndWAL = "20261124T230000Z", "000000010000000000000002", "000000010000000000000002"
	for _, b := range []*catalog.Backup{&failed, &noWAL} {
		if err := catalog.Save(context.Background(), f.store, f.layout, b); err != nil {
			t.Fatal(err)
		}
	}
	full := filepath.Join(tmp, "full")
	if err := os.MkdirAll(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yes := true
	for _, c := range []struct {
		name   string
		change func(*Request)
		class  error
		msg    string
	}{
		{"two targets", func(r *Request) { r.Target = Target{Name: "a", Immediate: true} }, ErrInvalid, "at most one"},
		{"target with a standby", func(r *Request) { r.Standby, r.Target.Name = true, "a" }, ErrInvalid, "--standby builds a replica"},
		{"sync method", func(r *Request) { r.SyncMethod = "sync" }, ErrInvalid, `--sync-method "sync": use fsync or syncfs`},
		{"target without recovery", func(r *Request) { r.NoRecoveryConfig, r.Target.Immediate = true, true }, ErrInvalid, "a recovery target cannot be given"},
		{"standby without recovery", func(r *Request) { r.NoRecoveryConfig, r.Standby = true, true }, ErrInvalid, "give one of them"},
		{"inclusive alone", func(r *Request) { r.Target.Inclusive = &yes }, ErrInvalid, "--target-inclusive needs"},
		{"relocation of a snapshot", func(r *Request) {
			r.Snapshot, r.Relocate = &SnapshotRecovery{Instance: "db2"}, map[string]string{"ts1": "/x"}
		}, ErrInvalid, "--tablespace does not apply"},
		{"unknown tablespace", func(r *Request) { r.Relocate = map[string]string{"nope": "/x"} }, ErrInvalid, "no such tablespace; it has ts1"},
		{"target before the end", func(r *Request) {
			r.Backup, r.Target.Time = f.backup.ID, f.backup.EndTime.Add(-time.Minute)
		}, ErrInvalid, "is before the end of backup"},
		{"file backup from disks", func(r *Request) { r.Backup, r.Snapshot = f.backup.ID, &SnapshotRecovery{Instance: "db2"} }, ErrInvalid, "is not a snapshot backup"},
		{"not DONE", func(r *Request) { r.Backup = failed.ID }, ErrMissing, "has status FAILED: only DONE backups can be restored"},
		{"WAL not archived", func(r *Request) { r.Backup = noWAL.ID }, ErrMissing, "is not in the store: recovery cannot make the backup consistent (is WAL archiving to this store and server working?) (--no-wal-check restores anyway)"},
		{"directory with files", func(r *Request) { r.Backup, r.Dest = f.backup.ID, full }, ErrRefused, "is not empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "never")
			req := f.request(dest)
			c.change(&req)
			_, err := Restore(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("%v, want an error saying %q", err, c.msg)
			}
			for _, class := range []error{ErrInvalid, ErrMissing, ErrRefused} {
				if got := errors.Is(err, class); got != (class == c.class) {
					t.Errorf("errors.Is(%v, %v) = %v", err, class, got)
				}
			}
			if _, err := os.Stat(dest); !os.IsNotExist(err) {
				t.Errorf("a refused restore created %s", dest)
			}
		})
	}

	// The classes keep what is beneath: the target's, the WAL's and the
	// store's own.
	req := f.request(filepath.Join(tmp, "a"))
	req.Target.Time, req.Backup = f.backup.EndTime.Add(-time.Minute), f.backup.ID
	if _, err := Restore(context.Background(), req); !errors.Is(err, ErrTarget) {
		t.Errorf("target before the end: %v", err)
	}
	req = f.request(filepath.Join(tmp, "b"))
	req.Backup = noWAL.ID
	if _, err := Restore(context.Background(), req); !errors.Is(err, ErrMissingWAL) || !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("missing WAL: %v", err)
	}
	// An unknown backup is the catalog's not-found, in no class of its own.
	req = f.request(filepath.Join(tmp, "c"))
	req.Backup = "nightly"
	if _, err := Restore(context.Background(), req); !errors.Is(err, cloud.ErrNotFound) || errors.Is(err, ErrMissing) || errors.Is(err, ErrInvalid) {
		t.Errorf("unknown backup: %v", err)
	}
	// --no-wal-check restores what the WAL check refuses.
	req = f.request(filepath.Join(tmp, "d"))
	req.Backup, req.NoWALCheck = noWAL.ID, true
	if _, err := Restore(context.Background(), req); err != nil {
		t.Errorf("with NoWALCheck: %v", err)
	}
}
