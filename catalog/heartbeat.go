package catalog

import "time"

// The heartbeat is a contract between the writer of a STARTED record
// (gbc-backup) and its readers (retention). The writer refreshes Heartbeat
// every HeartbeatInterval and fails its own backup once it has gone
// HeartbeatGiveUp intervals without a successful refresh; a reader takes
// the record for dead only after StaleHeartbeats intervals without a sign of
// life. The interval between the two absorbs clock skew between the hosts
// and the store, and a refresh still in flight, so that a live backup,
// however slow, is never taken for dead: either its refreshes land, or it
// stops before a reader may give up on it.
const (
	// StaleHeartbeats is how many of its writer's heartbeat intervals a
	// STARTED record may show no sign of life and still be live.
	StaleHeartbeats = 3
	// HeartbeatGiveUp is how many intervals a writer goes on without a
	// successful refresh before it fails its backup. It must stay below
	// StaleHeartbeats.
	HeartbeatGiveUp = 2
	// MinSilence is the shortest silence after which a reader takes a
	// STARTED record for dead, whatever interval it declares: a floor
	// against clock skew and against a record declaring a tiny interval.
	MinSilence = 10 * time.Minute
)

// SilenceLimit is how long b, a STARTED record, may show no sign of life
// (no newer heartbeat, begin time or object) and still be live:
// StaleHeartbeats of the heartbeat interval its writer declared, at least
// MinSilence, or orphanAge when that is shorter or when the record declares
// no interval (written by a release without one, whose writer does not
// stop on a lost heartbeat).
func (b *Backup) SilenceLimit(orphanAge time.Duration) time.Duration {
	if b.HeartbeatInterval <= 0 || b.Heartbeat.IsZero() {
		return orphanAge
	}
	// Compared in seconds first: a huge declared interval must not
	// overflow a Duration.
	if b.HeartbeatInterval > int64(orphanAge/time.Second)/StaleHeartbeats {
		return orphanAge
	}
	limit := max(StaleHeartbeats*time.Duration(b.HeartbeatInterval)*time.Second, MinSilence)
	return min(limit, orphanAge)
}
