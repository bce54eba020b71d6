package main

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
)

// A front hands a call whose store it does not link (this binary links no
// SDK provider) to the full binary with the command line it got,
// the command's name first; it serves file:// itself; and the full binary
// (cli.Run) never hands off.
func TestRunFrontHandsOff(t *testing.T) {
	dir := t.TempDir()
	var served []string
	cmds := []*cli.Command{{
		Name: "gbc-test", ArgsUsage: "STORE_URL", MinArgs: 1, MaxArgs: 1,
		Flags: cli.StoreFlags(),
		Action: func(ctx context.Context, e *cli.Env) error {
			if e.Args[0] == "worker" {
				return cli.NotServed("s3://bkt/x")
			}
			s, err := e.OpenStore(ctx, e.Args[0])
			if err != nil {
				return err
			}
			served = append(served, e.Args[0])
			return s.Close()
		},
	}}
	var handed [][]string
	handOff := func(argv []string) error {
		handed = append(handed, argv)
		return errors.New("exec: no such file")
	}
	for _, tc := range []struct {
		argv   []string
		handed []string // nil: served here
		want   int
	}{
		{[]string{"/usr/bin/gbc-test", "--endpoint-url", "http://127.0.0.1:9000", "s3://bkt/x"},
			[]string{"/usr/bin/gbc-test", "--endpoint-url", "http://127.0.0.1:9000", "s3://bkt/x"}, cli.ExitUsage},
		{[]string{"/usr/bin/gbc-front", "test", "gs://bkt/x"}, []string{"gbc-test", "gs://bkt/x"}, cli.ExitUsage},
		{[]string{"gbc-test", "worker"}, []string{"gbc-test", "worker"}, cli.ExitUsage},
		{[]string{"gbc-test", "file://" + dir}, nil, cli.ExitOK},
		// A malformed URL is this binary's own usage error.
		{[]string{"gbc-test", "s3://"}, nil, cli.ExitUsage},
		{[]string{"gbc-front", "--list-commands"}, nil, cli.ExitOK},
	} {
		handed, served = nil, nil
		if code := cli.RunFront("gbc-front", cmds, tc.argv, handOff); code != tc.want {
			t.Errorf("RunFront(%q) = %d, want %d", tc.argv, code, tc.want)
		}
		switch {
		case tc.handed == nil && len(handed) > 0:
			t.Errorf("RunFront(%q) handed %q off, want it served here", tc.argv, handed)
		case tc.handed != nil && (len(handed) != 1 || !slices.Equal(handed[0], tc.handed)):
			t.Errorf("RunFront(%q) handed off %q, want %q once", tc.argv, handed, tc.handed)
		case tc.handed != nil && len(served) > 0:
			t.Errorf("RunFront(%q) served %q and handed it off", tc.argv, served)
		}
	}
	// The full binary reports what it cannot open, and hands nothing off.
	handed = nil
	if code := cli.Run(cmds, []string{"gbc-test", "s3://bkt/x"}); code != cli.ExitUsage || len(handed) > 0 {
		t.Errorf("Run of an unlinked store = %d (handed off %q), want %d and no hand-off", code, handed, cli.ExitUsage)
	}
}

// The front links file:// alone: linking a cloud SDK, through any import,
// would cost every WAL call its start time (the point of this binary) and
// end the hand-off of those stores to the full binary.
func TestLinksNoSDK(t *testing.T) {
	for _, u := range []string{"s3://bkt/x", "gs://bkt/x", "azblob://ctr/x"} {
		if cloud.Linked(u) {
			t.Errorf("the front links the provider of %s", u)
		}
	}
	if !cloud.Linked("file:///var/lib/gbc") {
		t.Error("the front does not serve file://")
	}
}
