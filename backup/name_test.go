package backup

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
)

// --name must find one backup: a name any record of the server has, DONE,
// FAILED or still STARTED, is refused, also once the listing is served
// from the catalog's summary cache.
func TestCheckNameFree(t *testing.T) {
	ctx := context.Background()
	s := cloud.NewMem()
	l := catalog.Layout{Server: "main"}
	begin := time.Date(2026, 11, 24, 21, 48, 42, 0, time.UTC)
	save := func(id, name string, status catalog.Status) {
		t.Helper()
		if err := catalog.Save(ctx, s, l, &catalog.Backup{ID: id, Name: name, Server: "main", Status: status, BeginTime: begin}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string) error {
		r := &run{o: Options{Store: s, Server: "main", Name: name}, layout: l}
		return r.checkNameFree(ctx)
	}
	save("20261124T214842Z", "done", catalog.StatusDone)
	save("20261124T214843Z", "failed", catalog.StatusFailed)
	if err := check("fresh"); err != nil {
		t.Fatalf("a free name: %v", err)
	}
	// The listing above cached the summaries; a backup started since is
	// seen all the same.
	save("20261124T214844Z", "running", catalog.StatusStarted)
	for _, name := range []string{"done", "failed", "running"} {
		err := check(name)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `already has a backup named "`+name+`"`) {
			t.Errorf("name %q of an existing backup: err = %v, want a refusal", name, err)
		}
	}
	if err := check(""); err != nil {
		t.Errorf("no name: %v", err)
	}
}
