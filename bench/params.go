package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Params size a run. The scales are presets; the JSON report records the
// values used.
type Params struct {
	// ArchiveSeconds is how long pgbench writes WAL while each tool is the
	// archive_command (scenario 1).
	ArchiveSeconds int `json:"archive_seconds"`
	// ArchiveClients is pgbench's -c for that load.
	ArchiveClients int `json:"archive_clients"`
	// BacklogSegments is the backlog of .ready segments the archiver finds
	// when each tool becomes the archive_command (scenario 1, backlog).
	BacklogSegments int `json:"backlog_segments"`
	// LatencyCalls is how many single archive calls the per-call median
	// is taken over.
	LatencyCalls int `json:"latency_calls"`
	// PgbenchScale is pgbench -s of the backed-up database (scenarios 2-4).
	PgbenchScale int `json:"pgbench_scale"`
	// ReplaySegments is the WAL written after the backups, which recovery
	// fetches through restore_command (scenario 4).
	ReplaySegments int `json:"replay_segments"`
	// ManyFiles is the number of files of the many-files cluster
	// (scenario 5), made of tables of four files each.
	ManyFiles int `json:"many_files"`
}

// Scales are the presets of --scale.
//
//   - smoke: a minute or two; the test suite runs it so that the bench
//     cannot rot. Its figures mean nothing.
//   - quick: a few minutes; pgbench -s 10 (about 150 MB), 40 segments of
//     replay, 20,000 files.
//   - full: the figures; pgbench -s 100 (about 1.5 GB), 200
//     segments of replay, 200,000 files. About 20 minutes on 2 cores.
func scaleParams(name string) (Params, error) {
	switch name {
	case "smoke":
		return Params{ArchiveSeconds: 3, ArchiveClients: 2, BacklogSegments: 3, LatencyCalls: 3, PgbenchScale: 1, ReplaySegments: 2, ManyFiles: 1000}, nil
	case "quick":
		return Params{ArchiveSeconds: 20, ArchiveClients: 2, BacklogSegments: 30, LatencyCalls: 20, PgbenchScale: 10, ReplaySegments: 40, ManyFiles: 20000}, nil
	case "full":
		return Params{ArchiveSeconds: 60, ArchiveClients: 2, BacklogSegments: 100, LatencyCalls: 30, PgbenchScale: 100, ReplaySegments: 200, ManyFiles: 200000}, nil
	}
	return Params{}, fmt.Errorf("bench: unknown scale %q (want smoke, quick or full)", name)
}

// with returns p with the parameters named by their JSON names set.
func (p Params) with(set map[string]int) (Params, error) {
	if len(set) == 0 {
		return p, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return p, err
	}
	m := map[string]int{}
	if err := json.Unmarshal(b, &m); err != nil {
		return p, err
	}
	for k, v := range set {
		if _, ok := m[k]; !ok {
			return p, fmt.Errorf("bench: unknown parameter %q (want one of %s)", k, strings.Join(slices.Sorted(maps.Keys(m)), ", "))
		}
		if v <= 0 {
			return p, fmt.Errorf("bench: parameter %s=%d: want a positive number", k, v)
		}
		m[k] = v
	}
	b, err = json.Marshal(m)
	if err != nil {
		return p, err
	}
	var out Params
	err = json.Unmarshal(b, &out)
	return out, err
}

func (p Params) describe() string {
	return strings.Join([]string{
		fmt.Sprintf("WAL load %d s with %d pgbench clients", p.ArchiveSeconds, p.ArchiveClients),
		fmt.Sprintf("backlog of %d segments", p.BacklogSegments),
		fmt.Sprintf("%d single archive calls", p.LatencyCalls),
		fmt.Sprintf("pgbench -s %d", p.PgbenchScale),
		fmt.Sprintf("≥ %d segments replayed", p.ReplaySegments),
		fmt.Sprintf("%d files", p.ManyFiles),
	}, ", ")
}
