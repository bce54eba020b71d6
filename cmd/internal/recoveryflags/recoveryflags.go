// Package recoveryflags holds the options that say how a restored server
// recovers, shared by gbc-restore and gbc-verify --drill so that both take
// them alike: the --target-* options and the program restore_command
// calls.
package recoveryflags

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/pg"
	"github.com/gbc-backup/gbc/restore"
)

// TargetFlags are the recovery target options, with PostgreSQL's
// recovery_target_* meaning.
func TargetFlags() []ucli.Flag {
	return []ucli.Flag{
		cli.String("target-time", "recover up to this time, with a zone (\"2026-11-24 21:48:42+01\")", ""),
		cli.String("target-lsn", "recover up to this WAL location (16/B374D848)", ""),
		cli.String("target-xid", "recover up to this transaction id", ""),
		cli.String("target-name", "recover up to this restore point (pg_create_restore_point)", ""),
		cli.Bool("target-immediate", "stop as soon as the backup is consistent"),
		cli.String("target-timeline", "recover along this timeline: current, latest or a number (PostgreSQL's default: latest)", ""),
		cli.String("target-inclusive", "true: stop just after the target (PostgreSQL's default); false: just before it", ""),
		cli.String("target-action", "at the target: pause, promote or shutdown (PostgreSQL's default: pause)", ""),
	}
}

// Target reads the TargetFlags, refusing as usage errors a malformed
// value and a combination PostgreSQL would refuse at startup (for a
// standby restore when standby is true).
func Target(e *cli.Env, standby bool) (restore.Target, error) {
	t := restore.Target{
		XID:       e.String("target-xid"),
		Name:      e.String("target-name"),
		Immediate: e.Bool("target-immediate"),
		Timeline:  e.String("target-timeline"),
		Action:    e.String("target-action"),
	}
	if v := e.String("target-time"); v != "" {
		tm, err := restore.ParseTime(v)
		if err != nil {
			return t, cli.Exit(cli.ExitUsage, err)
		}
		t.Time = tm
	}
	if v := e.String("target-lsn"); v != "" {
		lsn, err := pg.ParseLSN(v)
		if err != nil || lsn == 0 {
			return t, cli.Usagef("--target-lsn %q: use a WAL location such as 16/B374D848", v)
		}
		t.LSN = lsn
	}
	if v := e.String("target-inclusive"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return t, cli.Usagef("--target-inclusive %q: use true or false", v)
		}
		t.Inclusive = &b
	}
	if err := t.CheckFor(standby); err != nil {
		return t, cli.Exit(cli.ExitUsage, err)
	}
	return t, nil
}

// WALRestoreFlag is --wal-restore-command.
func WALRestoreFlag() ucli.Flag {
	return cli.String("wal-restore-command", "program (with options) to fetch WAL in restore_command, instead of this gbc's gbc-wal-restore", "")
}

// WALRestoreProgram is the start of restore_command: the override as
// given, or the gbc-wal-restore link beside this executable, or this
// multi-call binary with the command name as first argument.
func WALRestoreProgram(override string) (string, error) {
	if override != "" {
		return override, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this program's path for restore_command (give --wal-restore-command): %w", err)
	}
	link := filepath.Join(filepath.Dir(exe), "gbc-wal-restore")
	if fi, err := os.Stat(link); err == nil && fi.Mode().IsRegular() {
		return restore.ProgramCommand(link), nil
	}
	return restore.ProgramCommand(exe, "wal-restore"), nil
}
