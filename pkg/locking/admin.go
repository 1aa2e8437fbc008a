package locking

import (
	"slices"
	"strings"
)

// Hooks for the server core and the admin API.

// Locks lists what the table holds (locks, provisional grants, queued
// requests and share reservations) on a volume and of a client host; an
// empty argument matches everything. Entry.File is the file handle's
// bytes; Entry.Range.Len() gives the NLM length (0: to end of file).
func (s *Service) Locks(volume, client string) []Entry { return s.table.List(volume, client) }

// ReleaseClient force-releases everything a client host holds or waits
// for, as if it had restarted, granting whatever that lets through. The
// client is not told: its processes still believe they hold the locks.
// It returns how many items were released.
func (s *Service) ReleaseClient(name string) int {
	n := s.table.FreeAll(name)
	s.grace.done(name, "released by the administrator")
	if n > 0 {
		s.log.Info("administrator released a client's locks", "client", name, "items", n)
	}
	return n
}

// DropVolume forgets every lock on a volume's files; call it when the
// volume is deleted. Blocked clients get NLM4_STALE_FH when they retry.
func (s *Service) DropVolume(volume string) int { return s.table.DropVolume(volume) }

// DropFile forgets every lock on one file.
func (s *Service) DropFile(fh []byte) int { return s.table.DropFile(string(fh)) }

// ClientInfo describes a client host known to the lock manager.
type ClientInfo struct {
	Name      string // caller_name
	Addr      string // the address SM_NOTIFY goes to, if monitored
	State     int32  // the client's NSM state, if known
	Monitored bool   // recorded on disk for notification after a restart
	Active    bool   // holds or waits for something now
}

// Clients lists the client hosts that are monitored or hold anything.
func (s *Service) Clients() []ClientInfo {
	byName := map[string]*ClientInfo{}
	for _, r := range s.mon.list() {
		byName[r.Name] = &ClientInfo{Name: r.Name, Addr: r.Addr, State: r.State, Monitored: true}
	}
	for _, c := range s.table.Clients() {
		ci := byName[c]
		if ci == nil {
			ci = &ClientInfo{Name: c}
			byName[c] = ci
		}
		ci.Active = true
	}
	out := make([]ClientInfo, 0, len(byName))
	for _, ci := range byName {
		out = append(out, *ci)
	}
	slices.SortFunc(out, func(a, b ClientInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
