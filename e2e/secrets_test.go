package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// TestSecretsNeverLeak runs archiving, a backup (with its pusher), a
// restore and a recovery through restore_command (with its prefetcher) on
// S3, and then looks for the store's secret key everywhere gbc writes or
// shows something: every log, the restored recovery configuration, every
// object in the store (decompressed), the commands' output, and the
// command lines ps shows while they run.
func TestSecretsNeverLeak(t *testing.T) {
	st := harness.NewStore(t, "s3")
	secret := ""
	for _, kv := range st.Env {
		if v, ok := strings.CutPrefix(kv, "AWS_SECRET_ACCESS_KEY="); ok {
			secret = v
		}
	}
	if len(secret) < 8 {
		t.Fatalf("no usable secret key in the store's environment: %q", secret)
	}

	// ps, sampled every 20 ms from start to end.
	var (
		psMu  sync.Mutex
		psOut bytes.Buffer
	)
	ctx, stop := context.WithCancel(context.Background())
	var psDone sync.WaitGroup
	psDone.Add(1)
	go func() {
		defer psDone.Done()
		for ctx.Err() == nil {
			out, _ := exec.Command("ps", "-eww", "-o", "args").Output()
			psMu.Lock()
			psOut.Write(out)
			psMu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()

	var outputs bytes.Buffer
	run := func(pg *harness.Cluster, cmd string, flags []string, pos ...string) {
		t.Helper()
		r := pg.RunGBCWith(t, harness.RunOptions{Env: st.Env}, st.Argv(harness.Bin(t, cmd), append([]string{"-v"}, flags...), pos...)...)
		outputs.WriteString(r.Stdout + r.Stderr)
		if r.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s", cmd, r.ExitCode, r.Stderr)
		}
	}
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	run(pg, "gbc-backup", nil, bkServer)
	pg.PgBench(t, "-c", "2", "-T", "3")
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 2*time.Minute)
	// A wrong secret must not show the right one, nor itself.
	bad := pg.RunGBCWith(t, harness.RunOptions{Env: append(append([]string(nil), st.Env...), "AWS_SECRET_ACCESS_KEY="+secret+"-wrong")},
		st.Argv(harness.Bin(t, "gbc-backup-list"), []string{"-v"}, bkServer)...)
	outputs.WriteString(bad.Stdout + bad.Stderr)

	dest := pg.NewEmptyDataDir(t)
	run(pg, "gbc-restore", []string{"--disable-archiving"}, bkServer, "latest", dest)
	r := pg.StartFrom(t, dest, 0)
	r.WaitRecovered(t, 3*time.Minute)
	r.Stop(t)
	pg.Stop(t)
	stop()
	psDone.Wait()

	check := func(what string, data []byte) {
		t.Helper()
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the secret key shows in %s", what)
		}
	}
	check("the commands' output", outputs.Bytes())
	check("ps", psOut.Bytes())
	if !bytes.Contains(psOut.Bytes(), []byte("gbc-")) {
		t.Errorf("ps never showed a gbc command: the sampling did not work")
	}
	for _, dir := range []string{pg.DataDir, dest, filepath.Dir(pg.LogPath), filepath.Dir(r.LogPath)} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			// Relation files hold table data, not configuration or logs.
			if strings.Contains(p, string(filepath.Separator)+"base"+string(filepath.Separator)) || strings.Contains(p, "pg_wal"+string(filepath.Separator)+"0") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err == nil {
				check(p, data)
			}
			return nil
		})
	}
	auto, err := os.ReadFile(filepath.Join(dest, "postgresql.auto.conf"))
	if err != nil || !strings.Contains(string(auto), "restore_command") {
		t.Errorf("restored postgresql.auto.conf has no restore_command (%v): the check above proved nothing", err)
	}

	store := st.Open(t)
	n := 0
	err = store.List(context.Background(), "", func(a cloud.Attrs) error {
		rc, err := store.Get(context.Background(), a.Key)
		if err != nil {
			return err
		}
		defer rc.Close()
		var body io.Reader = rc
		if _, codec := compress.SplitKey(a.Key); codec != nil {
			zr, err := codec.NewReader(rc)
			if err != nil {
				return err
			}
			defer zr.Close()
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		check("object "+a.Key, data)
		attrs, err := store.Stat(context.Background(), a.Key)
		if err == nil {
			for k, v := range attrs.Metadata {
				check("metadata of "+a.Key, []byte(k+"="+v))
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Errorf("only %d objects in the store: the check proved little", n)
	}
}
