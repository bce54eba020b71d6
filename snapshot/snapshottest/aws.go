package snapshottest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// AWSInstanceID is the fake EC2's id of instance name (its Name tag).
func AWSInstanceID(name string) string { return "i-0" + hash16(name) }

// AWSZone is the availability zone of every fake EC2 volume.
const AWSZone = "eu-west-1a"

// NewAWS serves the EC2 query API subset gbc uses over c, until the test
// ends. Point the SDK at the returned server's URL as BaseEndpoint.
func NewAWS(t testing.TB, c *Cloud) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			awsError(w, 400, "MalformedQueryString", err.Error())
			return
		}
		action := r.Form.Get("Action")
		if f := c.begin(action); f != nil {
			awsError(w, f.Status, f.Code, "injected fault")
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		var b bytes.Buffer
		status, code, msg := c.awsServe(action, r, &b)
		if code != "" {
			awsError(w, status, code, msg)
			return
		}
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId>%s</%sResponse>`,
			action, b.String(), action)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>r-1</RequestID></Response>`,
		esc(code), esc(msg))
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// list reads the query protocol's numbered list Prefix.1, Prefix.2, ...
func list(r *http.Request, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := r.Form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

func (c *Cloud) awsServe(action string, r *http.Request, b *bytes.Buffer) (int, string, string) {
	switch action {
	case "DescribeInstances":
		var found []*instance
		ids := list(r, "InstanceId")
		for _, inst := range c.instances {
			if len(ids) > 0 && !slices.Contains(ids, AWSInstanceID(inst.name)) {
				continue
			}
			if len(ids) == 0 && !awsFilterMatch(r, inst.name) {
				continue
			}
			found = append(found, inst)
		}
		if len(ids) > 0 && len(found) == 0 {
			return 400, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", strings.Join(ids, ","))
		}
		b.WriteString("<reservationSet>")
		for _, inst := range found {
			fmt.Fprintf(b, "<item><reservationId>r-0</reservationId><instancesSet><item><instanceId>%s</instanceId><placement><availabilityZone>%s</availabilityZone></placement><blockDeviceMapping>",
				AWSInstanceID(inst.name), AWSZone)
			for _, a := range inst.attachments {
				fmt.Fprintf(b, "<item><deviceName>%s</deviceName><ebs><volumeId>%s</volumeId><status>attached</status></ebs></item>",
					esc(a.Device), AWSVolumeID(a.Disk))
			}
			fmt.Fprintf(b, "</blockDeviceMapping><tagSet><item><key>Name</key><value>%s</value></item></tagSet></item></instancesSet></item>", esc(inst.name))
		}
		b.WriteString("</reservationSet>")
	case "DescribeVolumes":
		b.WriteString("<volumeSet>")
		for _, id := range list(r, "VolumeId") {
			d := c.awsDisk(id)
			if d == nil {
				return 400, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", id)
			}
			fmt.Fprintf(b, "<item><volumeId>%s</volumeId><size>%d</size><snapshotId>%s</snapshotId><availabilityZone>%s</availabilityZone><status>in-use</status><tagSet><item><key>Name</key><value>%s</value></item></tagSet></item>",
				id, d.SizeGiB, esc(d.SourceSnapshot), AWSZone, esc(d.Name))
		}
		b.WriteString("</volumeSet>")
	case "CreateSnapshot":
		d := c.awsDisk(r.Form.Get("VolumeId"))
		if d == nil {
			return 400, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", r.Form.Get("VolumeId"))
		}
		tags := map[string]string{}
		for i := 1; ; i++ {
			k, ok := r.Form["TagSpecification.1.Tag."+strconv.Itoa(i)+".Key"]
			if !ok {
				break
			}
			tags[k[0]] = r.Form.Get("TagSpecification.1.Tag." + strconv.Itoa(i) + ".Value")
		}
		id := fmt.Sprintf("snap-0%016x", c.nextID())
		c.newSnapshot(id, d.Name, r.Form.Get("Description"), tags)
		fmt.Fprintf(b, "<snapshotId>%s</snapshotId><volumeId>%s</volumeId><status>pending</status><volumeSize>%d</volumeSize>",
			id, r.Form.Get("VolumeId"), d.SizeGiB)
	case "DescribeSnapshots":
		b.WriteString("<snapshotSet>")
		for _, id := range list(r, "SnapshotId") {
			s := c.snapshots[id]
			if s == nil || s.Deleted {
				return 400, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id)
			}
			s.read()
			state, msg := map[string]string{"pending": "pending", "completed": "completed", "failed": "error"}[s.State], ""
			if s.State == "failed" {
				msg = "Internal error"
			}
			fmt.Fprintf(b, "<item><snapshotId>%s</snapshotId><volumeId>%s</volumeId><status>%s</status><statusMessage>%s</statusMessage><progress>%d%%</progress></item>",
				id, AWSVolumeID(s.Disk), state, msg, map[bool]int{true: 100}[s.State == "completed"])
		}
		b.WriteString("</snapshotSet>")
	case "DeleteSnapshot":
		id := r.Form.Get("SnapshotId")
		s := c.snapshots[id]
		if s == nil || s.Deleted {
			return 400, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id)
		}
		if s.LockMode != "" {
			return 400, "SnapshotLocked", fmt.Sprintf("The snapshot '%s' is locked.", id)
		}
		s.Deleted = true
		b.WriteString("<return>true</return>")
	case "LockSnapshot":
		id := r.Form.Get("SnapshotId")
		s := c.snapshots[id]
		if s == nil || s.Deleted {
			return 400, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id)
		}
		s.LockMode = r.Form.Get("LockMode")
		s.LockDays, _ = strconv.Atoi(r.Form.Get("LockDuration"))
		fmt.Fprintf(b, "<snapshotId>%s</snapshotId><lockState>%s</lockState><lockDuration>%d</lockDuration><lockExpiresOn>2030-01-01T00:00:00.000Z</lockExpiresOn>",
			id, s.LockMode, s.LockDays)
	default:
		return 400, "InvalidAction", "The action " + action + " is not valid for this fake"
	}
	return 200, "", ""
}

func (c *Cloud) awsDisk(volumeID string) *Disk {
	for _, d := range c.disks {
		if AWSVolumeID(d.Name) == volumeID {
			return d
		}
	}
	return nil
}

// awsFilterMatch applies the tag:Name filter DescribeInstances gets when
// an instance is named rather than given by id.
func awsFilterMatch(r *http.Request, name string) bool {
	for i := 1; ; i++ {
		n, ok := r.Form["Filter."+strconv.Itoa(i)+".Name"]
		if !ok {
			return true
		}
		if n[0] == "tag:Name" && !slices.Contains(list(r, "Filter."+strconv.Itoa(i)+".Value"), name) {
			return false
		}
	}
}
