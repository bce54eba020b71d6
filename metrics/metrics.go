package metrics

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Prefix starts every metric name.
const Prefix = "gbc_"

// ServerLabel is the label every sample carries.
const ServerLabel = "server"

// Type is a metric type as the TYPE line gives it.
type Type int

const (
	Gauge Type = iota
	Counter
)

func (t Type) String() string {
	if t == Counter {
		return "counter"
	}
	return "gauge"
}

// Sample is one value of one metric for one server.
type Sample struct {
	// Name starts with Prefix; Help is its HELP line (every sample of a
	// name must agree on Help and Type).
	Name string
	Help string
	Type Type
	// Server is the server label's value; it must not be empty.
	Server string
	// Labels are more labels, if any (not "server").
	Labels map[string]string
	Value  float64
}

// File is a textfile-collector file. Name it *.prom inside the collector's
// directory.
type File struct {
	Path string
}

// Write replaces the file with samples.
func (f File) Write(samples []Sample) error {
	fams, err := families(samples)
	if err != nil {
		return err
	}
	return f.locked(func() error { return f.replace(fams) })
}

// Merge replaces server's samples in the file with samples (every one of
// which must be of server), keeping the samples of other servers. A
// missing file is an empty one; a file that is not in the text format
// this package writes is refused, not overwritten.
func (f File) Merge(server string, samples []Sample) error {
	if server == "" {
		return errors.New("metrics: empty server")
	}
	for _, s := range samples {
		if s.Server != server {
			return fmt.Errorf("metrics: sample %s is of server %q, not %q", s.Name, s.Server, server)
		}
	}
	fams, err := families(samples)
	if err != nil {
		return err
	}
	return f.locked(func() error {
		old, err := f.read()
		if err != nil {
			return err
		}
		for name, of := range old {
			kept := slices.DeleteFunc(of.samples, func(s sample) bool { return s.server() == server })
			nf, ok := fams[name]
			switch {
			case len(kept) == 0:
			case !ok:
				of.samples = kept
				fams[name] = of
			case nf.typ == of.typ:
				nf.samples = append(kept, nf.samples...)
			}
			// A metric that changed type loses its old samples.
		}
		return f.replace(fams)
	})
}

// family is one metric name's HELP, TYPE and samples.
type family struct {
	name, help string
	typ        Type
	samples    []sample
}

// sample is one line: its labels sorted by name, and its value.
type sample struct {
	labels []label
	value  float64
}

type label struct{ name, value string }

func (s sample) server() string {
	for _, l := range s.labels {
		if l.name == ServerLabel {
			return l.value
		}
	}
	return ""
}

// families checks samples and groups them by metric name.
func families(samples []Sample) (map[string]*family, error) {
	fams := map[string]*family{}
	for _, s := range samples {
		if !strings.HasPrefix(s.Name, Prefix) || !validMetricName(s.Name) {
			return nil, fmt.Errorf("metrics: invalid metric name %q: want %s followed by letters, digits and underscores", s.Name, Prefix)
		}
		if s.Server == "" {
			return nil, fmt.Errorf("metrics: sample %s has no server", s.Name)
		}
		fam, ok := fams[s.Name]
		if !ok {
			fam = &family{name: s.Name, help: s.Help, typ: s.Type}
			fams[s.Name] = fam
		} else if fam.help != s.Help || fam.typ != s.Type {
			return nil, fmt.Errorf("metrics: samples of %s disagree on their help or type", s.Name)
		}
		ls := []label{{ServerLabel, s.Server}}
		for k, v := range s.Labels {
			if k == ServerLabel || !validLabelName(k) || strings.HasPrefix(k, "__") {
				return nil, fmt.Errorf("metrics: sample %s: invalid label name %q", s.Name, k)
			}
			ls = append(ls, label{k, v})
		}
		slices.SortFunc(ls, func(a, b label) int { return strings.Compare(a.name, b.name) })
		fam.samples = append(fam.samples, sample{labels: ls, value: s.Value})
	}
	return fams, nil
}

// read parses the file; a missing one is empty.
func (f File) read() (map[string]*family, error) {
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*family{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	fams, err := parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("metrics: %s is not a metrics file of gbc (%w): remove it or choose another --metrics-file", f.Path, err)
	}
	return fams, nil
}

// replace writes fams to a temporary file beside Path, syncs it, renames
// it over Path and syncs the directory: the collector reads the old file
// or the new one, and after a crash the new one is whole or absent.
func (f File) replace(fams map[string]*family) (err error) {
	data := encode(fams)
	dir, base := filepath.Split(f.Path)
	if dir == "" {
		dir = "."
	}
	// A hidden name without .prom: the collector reads *.prom only.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("metrics: write %s: %w", tmp.Name(), err)
	}
	// The collector usually runs as another user than gbc.
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("metrics: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("metrics: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("metrics: sync %s: %w", dir, err)
	}
	return nil
}

// locked runs fn holding an exclusive flock on the file's directory,
// which leaves no lock file behind in the collector's directory.
func (f File) locked(fn func() error) error {
	dir := filepath.Dir(f.Path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("metrics: open the directory of the metrics file: %w", err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("metrics: lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
	return fn()
}
