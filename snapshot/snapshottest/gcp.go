package snapshottest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// GCPDiskURL is the URL the fake Compute Engine gives a zonal disk.
func GCPDiskURL(project, zone, disk string) string {
	return fmt.Sprintf("https://www.googleapis.com/compute/v1/projects/%s/zones/%s/disks/%s", project, zone, disk)
}

func gcpSnapshotURL(project, name string) string {
	return fmt.Sprintf("https://www.googleapis.com/compute/v1/projects/%s/global/snapshots/%s", project, name)
}

var gceName = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// NewGCP serves the Compute Engine REST API subset gbc uses over c, for
// any project and zone, until the test ends. Point the SDK at the returned
// server's URL with option.WithEndpoint and option.WithoutAuthentication.
func NewGCP(t testing.TB, c *Cloud) *httptest.Server {
	ops := map[string]string{} // operation name -> snapshot it waits on ("" when none)
	mux := http.NewServeMux()
	handle := func(pattern, action string, h func(r *http.Request) (int, any)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if f := c.begin(action); f != nil {
				gcpError(w, f.Status, f.Code, "injected fault")
				return
			}
			c.mu.Lock()
			status, body := h(r)
			c.mu.Unlock()
			if e, ok := body.(gcpErr); ok {
				gcpError(w, status, e.reason, e.msg)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		})
	}
	const base = "/compute/v1/projects/{project}"

	handle("GET "+base+"/zones/{zone}/instances/{instance}", "instances.get", func(r *http.Request) (int, any) {
		inst := c.instances[r.PathValue("instance")]
		if inst == nil {
			return 404, gcpErr{"notFound", fmt.Sprintf("The resource 'projects/%s/zones/%s/instances/%s' was not found", r.PathValue("project"), r.PathValue("zone"), r.PathValue("instance"))}
		}
		var disks []map[string]any
		for i, a := range inst.attachments {
			d := c.disks[a.Disk]
			disks = append(disks, map[string]any{
				"source":     GCPDiskURL(r.PathValue("project"), r.PathValue("zone"), a.Disk),
				"deviceName": a.Device,
				"boot":       i == 0,
				"type":       "PERSISTENT",
				"diskSizeGb": fmt.Sprint(d.SizeGiB),
				"index":      i,
			})
		}
		disks = append(disks, map[string]any{"deviceName": "local-ssd-0", "type": "SCRATCH", "index": len(disks)})
		return 200, map[string]any{"kind": "compute#instance", "name": inst.name, "id": "4242", "status": "RUNNING", "disks": disks}
	})
	handle("GET "+base+"/zones/{zone}/disks/{disk}", "disks.get", func(r *http.Request) (int, any) {
		d := c.disks[r.PathValue("disk")]
		if d == nil {
			return 404, gcpErr{"notFound", "The resource disk " + r.PathValue("disk") + " was not found"}
		}
		body := map[string]any{"kind": "compute#disk", "name": d.Name, "sizeGb": fmt.Sprint(d.SizeGiB), "status": "READY"}
		if d.SourceSnapshot != "" {
			body["sourceSnapshot"] = gcpSnapshotURL(r.PathValue("project"), d.SourceSnapshot)
		}
		return 200, body
	})
	handle("POST "+base+"/global/snapshots", "snapshots.insert", func(r *http.Request) (int, any) {
		var in struct {
			Name, SourceDisk, Description string
			Labels                        map[string]string
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return 400, gcpErr{"invalid", err.Error()}
		}
		if !gceName.MatchString(in.Name) {
			return 400, gcpErr{"invalid", fmt.Sprintf("Invalid value for field 'resource.name': '%s'", in.Name)}
		}
		for k, v := range in.Labels {
			if !regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`).MatchString(k) || !regexp.MustCompile(`^[a-z0-9_-]{0,63}$`).MatchString(v) {
				return 400, gcpErr{"invalid", fmt.Sprintf("Invalid label %q=%q", k, v)}
			}
		}
		if s := c.snapshots[in.Name]; s != nil && !s.Deleted {
			return 409, gcpErr{"alreadyExists", "The resource snapshot " + in.Name + " already exists"}
		}
		disk := lastPart(in.SourceDisk)
		if c.disks[disk] == nil {
			return 404, gcpErr{"notFound", "The resource " + in.SourceDisk + " was not found"}
		}
		c.newSnapshot(in.Name, disk, in.Description, in.Labels)
		op := fmt.Sprintf("operation-%d", c.nextID())
		ops[op] = in.Name
		return 200, map[string]any{"kind": "compute#operation", "name": op, "status": "RUNNING", "operationType": "insert",
			"targetLink": gcpSnapshotURL(r.PathValue("project"), in.Name)}
	})
	handle("GET "+base+"/global/operations/{operation}", "globalOperations.get", func(r *http.Request) (int, any) {
		name := r.PathValue("operation")
		snap, ok := ops[name]
		if !ok {
			return 404, gcpErr{"notFound", "The resource operation " + name + " was not found"}
		}
		body := map[string]any{"kind": "compute#operation", "name": name, "status": "DONE"}
		// The insert operation ends with an error when the snapshot fails,
		// as Compute Engine reports a snapshot that cannot be created.
		if s := c.snapshots[snap]; s != nil && s.outcome == Fail {
			body["error"] = map[string]any{"errors": []map[string]any{{"code": "RESOURCE_OPERATION_FAILED", "message": "snapshot creation failed"}}}
		}
		return 200, body
	})
	handle("GET "+base+"/global/snapshots/{snapshot}", "snapshots.get", func(r *http.Request) (int, any) {
		s := c.snapshots[r.PathValue("snapshot")]
		if s == nil || s.Deleted {
			return 404, gcpErr{"notFound", "The resource snapshot " + r.PathValue("snapshot") + " was not found"}
		}
		s.read()
		status := map[string]string{"pending": "CREATING", "completed": "READY", "failed": "FAILED"}[s.State]
		if s.State == "pending" && s.reads > 1 {
			status = "UPLOADING"
		}
		return 200, map[string]any{"kind": "compute#snapshot", "name": s.Name, "status": status,
			"diskSizeGb": fmt.Sprint(c.disks[s.Disk].SizeGiB), "labels": s.Tags}
	})
	handle("DELETE "+base+"/global/snapshots/{snapshot}", "snapshots.delete", func(r *http.Request) (int, any) {
		s := c.snapshots[r.PathValue("snapshot")]
		if s == nil || s.Deleted {
			return 404, gcpErr{"notFound", "The resource snapshot " + r.PathValue("snapshot") + " was not found"}
		}
		s.Deleted = true
		op := fmt.Sprintf("operation-%d", c.nextID())
		ops[op] = ""
		return 200, map[string]any{"kind": "compute#operation", "name": op, "status": "RUNNING", "operationType": "delete"}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type gcpErr struct{ reason, msg string }

// gcpError writes Google's JSON error reply.
func gcpError(w http.ResponseWriter, status int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": msg,
		"errors": []map[string]any{{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func lastPart(s string) string { return s[strings.LastIndex(s, "/")+1:] }
