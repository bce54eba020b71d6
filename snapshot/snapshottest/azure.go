package snapshottest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// AzureLocation is the region of every fake Azure resource.
const AzureLocation = "westeurope"

// AzureID is the ARM id the fake gives a resource of kind (disks,
// snapshots, virtualMachines).
func AzureID(sub, group, kind, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/%s/%s", sub, group, kind, name)
}

var azureSnapshotName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$`)

// NewAzure serves the Azure Resource Manager compute API subset gbc uses
// over c, for any subscription and resource group, until the test ends.
// It speaks plain HTTP on loopback: point the SDK at it through
// snapshot.Config.Endpoint, which allows that, with FakeCredential.
func NewAzure(t testing.TB, c *Cloud) *httptest.Server {
	copied := map[string]int{} // snapshot -> reads since it succeeded
	ops := map[string]string{} // async operation -> snapshot
	mux := http.NewServeMux()
	handle := func(pattern, action string, h func(r *http.Request) (int, any)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			// Any bearer token will do, as for an emulator; none is refused,
			// since that is how a client that skipped authentication shows.
			if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || tok == "" {
				azureError(w, 401, "AuthenticationFailed", "missing or wrong bearer token")
				return
			}
			if f := c.begin(action); f != nil {
				azureError(w, f.Status, f.Code, "injected fault")
				return
			}
			c.mu.Lock()
			status, body := h(r)
			c.mu.Unlock()
			if e, ok := body.(azErr); ok {
				azureError(w, status, e.code, e.msg)
				return
			}
			if a, ok := body.(asyncOp); ok {
				u := "http://" + r.Host + a.path
				w.Header().Set("Azure-AsyncOperation", u)
				w.Header().Set("Location", u)
				w.WriteHeader(status)
				return
			}
			if body == nil {
				w.WriteHeader(status)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		})
	}
	const base = "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute"

	handle("GET "+base+"/virtualMachines/{vm}", "virtualMachines.get", func(r *http.Request) (int, any) {
		inst := c.instances[r.PathValue("vm")]
		if inst == nil {
			return 404, azErr{"ResourceNotFound", fmt.Sprintf("The Resource 'Microsoft.Compute/virtualMachines/%s' under resource group '%s' was not found.", r.PathValue("vm"), r.PathValue("group"))}
		}
		sp := map[string]any{}
		var data []map[string]any
		for _, a := range inst.attachments {
			md := map[string]any{"id": AzureID(r.PathValue("sub"), r.PathValue("group"), "disks", a.Disk)}
			if a.LUN < 0 {
				sp["osDisk"] = map[string]any{"name": a.Disk, "createOption": "FromImage", "managedDisk": md}
				continue
			}
			data = append(data, map[string]any{"lun": a.LUN, "name": a.Disk, "createOption": "Attach", "managedDisk": md})
		}
		data = append(data, map[string]any{"lun": 63, "name": "legacy", "createOption": "Attach", "vhd": map[string]any{"uri": "https://x.blob.core.windows.net/vhds/legacy.vhd"}})
		sp["dataDisks"] = data
		return 200, map[string]any{"id": AzureID(r.PathValue("sub"), r.PathValue("group"), "virtualMachines", inst.name),
			"name": inst.name, "location": AzureLocation, "properties": map[string]any{"storageProfile": sp}}
	})
	handle("GET "+base+"/disks/{disk}", "disks.get", func(r *http.Request) (int, any) {
		d := c.disks[r.PathValue("disk")]
		if d == nil {
			return 404, azErr{"ResourceNotFound", "The Resource 'Microsoft.Compute/disks/" + r.PathValue("disk") + "' was not found."}
		}
		cd := map[string]any{"createOption": "Empty"}
		if d.SourceSnapshot != "" {
			cd = map[string]any{"createOption": "Copy", "sourceResourceId": AzureID(r.PathValue("sub"), r.PathValue("group"), "snapshots", d.SourceSnapshot)}
		}
		return 200, map[string]any{"id": AzureID(r.PathValue("sub"), r.PathValue("group"), "disks", d.Name), "name": d.Name, "location": AzureLocation,
			"properties": map[string]any{"diskSizeGB": d.SizeGiB, "creationData": cd, "provisioningState": "Succeeded"}}
	})
	snapshotBody := func(r *http.Request, s *Snapshot, state string) map[string]any {
		props := map[string]any{"provisioningState": state, "incremental": true, "diskSizeGB": c.disks[s.Disk].SizeGiB,
			"creationData": map[string]any{"createOption": "Copy", "sourceResourceId": AzureID(r.PathValue("sub"), r.PathValue("group"), "disks", s.Disk)}}
		if state == "Succeeded" {
			// Incremental snapshots copy their data in the background
			// after they are created: the first read shows it half done.
			copied[s.Name]++
			props["completionPercent"] = map[bool]float64{true: 100, false: 60}[copied[s.Name] > 1]
		}
		return map[string]any{"id": AzureID(r.PathValue("sub"), r.PathValue("group"), "snapshots", s.Name), "name": s.Name,
			"location": AzureLocation, "tags": s.Tags, "properties": props}
	}
	handle("PUT "+base+"/snapshots/{snapshot}", "snapshots.put", func(r *http.Request) (int, any) {
		name := r.PathValue("snapshot")
		if !azureSnapshotName.MatchString(name) {
			return 400, azErr{"InvalidResourceName", "Resource name " + name + " is invalid."}
		}
		var in struct {
			Location   string
			Tags       map[string]string
			Properties struct {
				Incremental  bool
				CreationData struct{ CreateOption, SourceResourceID string }
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return 400, azErr{"InvalidRequestContent", err.Error()}
		}
		if in.Location != AzureLocation || in.Properties.CreationData.CreateOption != "Copy" {
			return 400, azErr{"InvalidParameter", fmt.Sprintf("location %q, createOption %q", in.Location, in.Properties.CreationData.CreateOption)}
		}
		disk := lastPart(in.Properties.CreationData.SourceResourceID)
		if c.disks[disk] == nil {
			return 404, azErr{"NotFound", "Source disk " + in.Properties.CreationData.SourceResourceID + " not found."}
		}
		c.newSnapshot(name, disk, "", in.Tags)
		// As ARM does for snapshots: 202 and an operation to poll.
		op := fmt.Sprintf("op-%d", c.nextID())
		ops[op] = name
		return 202, asyncOp{"/subscriptions/" + r.PathValue("sub") + "/providers/Microsoft.Compute/locations/" + AzureLocation + "/operations/" + op + "?api-version=" + r.URL.Query().Get("api-version")}
	})
	handle("GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{op}", "operations.get", func(r *http.Request) (int, any) {
		name, ok := ops[r.PathValue("op")]
		if !ok {
			return 404, azErr{"NotFound", "operation " + r.PathValue("op") + " not found"}
		}
		s := c.snapshots[name]
		s.read()
		body := map[string]any{"name": r.PathValue("op"), "startTime": time.Now().UTC().Format(time.RFC3339)}
		switch s.State {
		case "pending":
			body["status"] = "InProgress"
		case "completed":
			body["status"] = "Succeeded"
		default:
			body["status"] = "Failed"
			body["error"] = map[string]any{"code": "InternalDiskManagementError", "message": "An internal disk management error occurred."}
		}
		return 200, body
	})
	handle("GET "+base+"/snapshots/{snapshot}", "snapshots.get", func(r *http.Request) (int, any) {
		s := c.snapshots[r.PathValue("snapshot")]
		if s == nil || s.Deleted {
			return 404, azErr{"ResourceNotFound", "The Resource 'Microsoft.Compute/snapshots/" + r.PathValue("snapshot") + "' was not found."}
		}
		s.read()
		return 200, snapshotBody(r, s, map[string]string{"pending": "Creating", "completed": "Succeeded", "failed": "Failed"}[s.State])
	})
	handle("DELETE "+base+"/snapshots/{snapshot}", "snapshots.delete", func(r *http.Request) (int, any) {
		s := c.snapshots[r.PathValue("snapshot")]
		if s == nil || s.Deleted {
			return 204, nil // ARM answers a delete of a missing resource with 204
		}
		s.Deleted = true
		return 200, nil
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type azErr struct{ code, msg string }

// asyncOp is a reply that starts an asynchronous operation at path.
type asyncOp struct{ path string }

func azureError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-ms-error-code", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

const fakeToken = "fake-azure-token"

// FakeCredential is an azcore.TokenCredential whose token the fake
// accepts, without any identity service.
type FakeCredential struct{}

// GetToken implements azcore.TokenCredential.
func (FakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: fakeToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}
