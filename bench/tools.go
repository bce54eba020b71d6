package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// tool is one row of the tables: a tool with its settings. Each method
// returns an argv (nil when the tool has no such command). PostgreSQL's
// %p and %f placeholders are left in archive and restore commands.
type tool interface {
	// name is the row label; family is the --tools name that selects it.
	name() string
	family() string
	// settings says, for the report, how the tool is configured.
	settings() string
	// prepare readies the store for a cluster before its WAL is archived
	// (pgBackRest's stanza-create).
	prepare(ctx context.Context, e *env, c *cluster) error
	archive(e *env, c *cluster) []string
	fetch(e *env, c *cluster, pgdata string) []string
	backup(e *env, c *cluster) []string
	restore(e *env, c *cluster, dest string) []string
	// backupPrefix is the key prefix of the cluster's base backups.
	backupPrefix(c *cluster) string
	// backupOf names the tool whose backup a fetch-only tool recovers from.
	backupOf() string
	version(e *env) string
}

// toolsFor returns the rows for the selected families, gbc first.
func toolsFor(families []string) ([]tool, error) {
	var out []tool
	for _, f := range families {
		switch f {
		case "gbc":
			out = append(out, gbcTool{})
		case "barman-cloud", "barman":
			out = append(out, barmanTool{})
		case "pgbackrest":
			out = append(out, pgbackrestTool{}, pgbackrestTool{async: true})
		default:
			return nil, fmt.Errorf("bench: unknown tool %q (want gbc, barman-cloud, pgbackrest)", f)
		}
	}
	return out, nil
}

// gbc, with its defaults (zstd, background archive pusher, prefetch, parallel jobs).
type gbcTool struct{}

func (gbcTool) name() string     { return "gbc" }
func (gbcTool) family() string   { return "gbc" }
func (gbcTool) backupOf() string { return "gbc" }
func (gbcTool) settings() string {
	return "defaults (zstd; background archive pusher, restore prefetch, parallel jobs)"
}

func (gbcTool) url() string { return "s3://" + s3Bucket + "/gbc" }

func (gbcTool) prepare(context.Context, *env, *cluster) error { return nil }

func (t gbcTool) cmd(e *env, name string, args ...string) []string {
	return append([]string{filepath.Join(e.gbcBin, name), "--endpoint-url", e.s3.endpoint}, args...)
}

func (t gbcTool) archive(e *env, c *cluster) []string {
	return t.cmd(e, "gbc-wal-archive", t.url(), c.server, "%p")
}

func (t gbcTool) fetch(e *env, c *cluster, _ string) []string {
	return t.cmd(e, "gbc-wal-restore", t.url(), c.server, "%f", "%p")
}

func (t gbcTool) backup(e *env, c *cluster) []string {
	return t.cmd(e, "gbc-backup", "--dbname", c.conninfo(), t.url(), c.server)
}

func (t gbcTool) restore(e *env, c *cluster, dest string) []string {
	return t.cmd(e, "gbc-restore", t.url(), c.server, "latest", dest)
}

func (gbcTool) backupPrefix(c *cluster) string { return "gbc/" + c.server + "/base/" }

func (gbcTool) version(e *env) string {
	return commandVersion(filepath.Join(e.gbcBin, "gbc"), "--version")
}

// barman-cloud without compression, its fastest setting (its gzip costs
// about 1 s more per WAL segment and 6x the backup time on this machine).
type barmanTool struct{}

func (barmanTool) name() string     { return "barman-cloud" }
func (barmanTool) family() string   { return "barman-cloud" }
func (barmanTool) backupOf() string { return "barman-cloud" }
func (barmanTool) settings() string {
	return "no compression (its fastest), backup -J 2 --immediate-checkpoint"
}

func (barmanTool) url() string { return "s3://" + s3Bucket + "/barman" }

func (barmanTool) prepare(context.Context, *env, *cluster) error { return nil }

func (t barmanTool) cmd(e *env, name string, args ...string) []string {
	return append([]string{name, "--cloud-provider", "aws-s3", "--endpoint-url", e.s3.endpoint}, args...)
}

func (t barmanTool) archive(e *env, c *cluster) []string {
	return t.cmd(e, "barman-cloud-wal-archive", t.url(), c.server, "%p")
}

func (t barmanTool) fetch(e *env, c *cluster, _ string) []string {
	return t.cmd(e, "barman-cloud-wal-restore", t.url(), c.server, "%f", "%p")
}

func (t barmanTool) backup(e *env, c *cluster) []string {
	return t.cmd(e, "barman-cloud-backup", "-h", c.sock, "-p", strconv.Itoa(c.port), "-U", "postgres",
		"-J", "2", "--immediate-checkpoint", "-n", "bench", t.url(), c.server)
}

func (t barmanTool) restore(e *env, c *cluster, dest string) []string {
	// barman-cloud-restore has no "latest": the backup is named.
	return t.cmd(e, "barman-cloud-restore", t.url(), c.server, "bench", dest)
}

func (barmanTool) backupPrefix(c *cluster) string { return "barman/" + c.server + "/base/" }

func (barmanTool) version(*env) string { return commandVersion("barman-cloud-backup", "--version") }

// pgBackRest with zstd, process-max = the cores of this machine class (2)
// and bundling of small files; async adds archive-async=y with a spool directory, for archive-push
// and archive-get (it has no backup of its own: it recovers from the sync
// row's backup).
type pgbackrestTool struct{ async bool }

func (t pgbackrestTool) name() string {
	if t.async {
		return "pgbackrest-async"
	}
	return "pgbackrest"
}
func (pgbackrestTool) family() string   { return "pgbackrest" }
func (pgbackrestTool) backupOf() string { return "pgbackrest" }
func (t pgbackrestTool) settings() string {
	if t.async {
		return "archive-async=y, process-max=2, spool-path, archive-get-queue-max=256MiB"
	}
	return "compress-type=zst, process-max=2, start-fast=y, repo1-bundle=y"
}

// configPath is the pgBackRest configuration of the run, written by
// writePgbackrestConfig.
func configPath(e *env) string { return filepath.Join(e.dir, "pgbackrest", "pgbackrest.conf") }

// writePgbackrestConfig writes the [global] options; the stanza's options go
// on each command line, so that one file serves every cluster.
func writePgbackrestConfig(e *env) error {
	dir := filepath.Join(e.dir, "pgbackrest")
	for _, d := range []string{dir, filepath.Join(dir, "log"), filepath.Join(dir, "lock"), filepath.Join(dir, "spool")} {
		if err := e.mkdir(d); err != nil {
			return err
		}
	}
	cfg := strings.Join([]string{
		"[global]",
		"repo1-type=s3",
		"repo1-path=/pgbackrest",
		"repo1-s3-bucket=" + e.s3.bucket,
		"repo1-s3-endpoint=" + e.s3.host,
		"repo1-storage-port=" + strconv.Itoa(e.s3.port),
		"repo1-s3-region=" + e.s3.region,
		"repo1-s3-uri-style=path",
		"repo1-storage-ca-file=" + e.s3.caFile,
		"repo1-retention-full=9999",
		// Small files go into bundles instead of one object each, which
		// pgBackRest advises for object stores (off by default in 2.45).
		"repo1-bundle=y",
		"log-path=" + filepath.Join(dir, "log"),
		"lock-path=" + filepath.Join(dir, "lock"),
		"spool-path=" + filepath.Join(dir, "spool"),
		"log-level-console=warn",
		"log-level-stderr=warn",
		"log-level-file=off",
		"compress-type=zst",
		"process-max=2",
		"start-fast=y",
		"",
	}, "\n")
	return e.writeFile(configPath(e), []byte(cfg), 0o644)
}

func (t pgbackrestTool) cmd(e *env, c *cluster, pgdata string, args ...string) []string {
	argv := []string{"pgbackrest", "--config=" + configPath(e), "--stanza=" + c.server, "--pg1-path=" + pgdata}
	return append(argv, args...)
}

func (t pgbackrestTool) prepare(ctx context.Context, e *env, c *cluster) error {
	argv := t.cmd(e, c, c.dir, "--pg1-port="+strconv.Itoa(c.port), "--pg1-socket-path="+c.sock, "stanza-create")
	if _, err := e.run(ctx, command{argv: argv}); err != nil {
		return fmt.Errorf("pgbackrest stanza-create: %w", err)
	}
	return nil
}

func (t pgbackrestTool) archive(e *env, c *cluster) []string {
	if t.async {
		return t.cmd(e, c, c.dir, "--archive-async", "--process-max=2", "archive-push", "%p")
	}
	return t.cmd(e, c, c.dir, "archive-push", "%p")
}

func (t pgbackrestTool) fetch(e *env, c *cluster, pgdata string) []string {
	if t.async {
		return t.cmd(e, c, pgdata, "--archive-async", "--process-max=2", "--archive-get-queue-max=256MiB", "archive-get", "%f", "%p")
	}
	return t.cmd(e, c, pgdata, "archive-get", "%f", "%p")
}

func (t pgbackrestTool) backup(e *env, c *cluster) []string {
	if t.async {
		return nil
	}
	return t.cmd(e, c, c.dir, "--pg1-port="+strconv.Itoa(c.port), "--pg1-socket-path="+c.sock, "--type=full", "backup")
}

func (t pgbackrestTool) restore(e *env, c *cluster, dest string) []string {
	if t.async {
		return nil
	}
	return t.cmd(e, c, dest, "restore")
}

func (pgbackrestTool) backupPrefix(c *cluster) string { return "pgbackrest/backup/" + c.server + "/" }

func (pgbackrestTool) version(*env) string { return commandVersion("pgbackrest", "version") }

// commandVersion runs a version command and returns its first line.
func commandVersion(argv ...string) string {
	p, err := exec.LookPath(argv[0])
	if err != nil {
		return "not installed"
	}
	out, err := exec.Command(p, argv[1:]...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// localCopy is no tool: restore_command is cp from a local directory of
// uncompressed segments, which costs next to nothing per segment. Its
// replay row is the floor PostgreSQL's own replay sets, against which a
// tool's restore_command overhead can be read.
type localCopy struct{ dir string }

func (localCopy) name() string     { return "cp (floor)" }
func (localCopy) family() string   { return "" }
func (localCopy) backupOf() string { return "gbc" }
func (localCopy) settings() string {
	return "restore_command cp from local disk, uncompressed: PostgreSQL's replay alone"
}
func (localCopy) prepare(context.Context, *env, *cluster) error { return nil }
func (localCopy) archive(*env, *cluster) []string               { return nil }
func (t localCopy) fetch(*env, *cluster, string) []string {
	return []string{"cp", filepath.Join(t.dir, "%f"), "%p"}
}
func (localCopy) backup(*env, *cluster) []string          { return nil }
func (localCopy) restore(*env, *cluster, string) []string { return nil }
func (localCopy) backupPrefix(*cluster) string            { return "" }
func (localCopy) version(*env) string                     { return "" }
