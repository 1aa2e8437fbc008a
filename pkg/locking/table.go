// Package locking implements NFS file locking for NFSv3 clients: the Network
// Lock Manager (NLM v4, program 100021) and the Network Status Monitor (NSM,
// program 100024) that lets locks survive a reboot of either side.
//
// The package has three layers:
//
//   - Table, a pure in-memory POSIX byte-range lock table with blocking
//     waiters and DOS share reservations, no I/O;
//   - the XDR codecs of the NLM v4 and NSM arguments and results;
//   - Service, the RPC programs: it validates requests, applies them to the
//     Table, calls clients back when a blocked lock is granted, records the
//     clients that hold locks on disk and runs the grace period in which
//     they reclaim their locks after a server restart.
//
// See docs/locking.md for the design.
package locking

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Range is an inclusive byte range. End == math.MaxUint64 means "to the
// end of the file, however far it grows": in a 64-bit offset space the two
// are the same set of bytes.
type Range struct {
	Start, End uint64
}

// ToEOF is the End of a range that runs to the end of the file.
const ToEOF = math.MaxUint64

// WholeFile is the range of a whole-file lock.
var WholeFile = Range{0, ToEOF}

// RangeOf converts an NLM (offset, length) pair into a Range. Length 0
// means to end of file. It reports false when offset+length-1 does not fit
// in 64 bits: such a request names bytes that cannot exist, and NLM
// answers it with NLM4_FBIG.
func RangeOf(offset, length uint64) (Range, bool) {
	if length == 0 {
		return Range{offset, ToEOF}, true
	}
	if length-1 > math.MaxUint64-offset {
		return Range{}, false
	}
	return Range{offset, offset + length - 1}, true
}

// Len returns the NLM length of r: 0 for a range that runs to EOF.
func (r Range) Len() uint64 {
	if r.End == ToEOF {
		return 0
	}
	return r.End - r.Start + 1
}

// Overlaps reports whether r and o share a byte.
func (r Range) Overlaps(o Range) bool { return r.Start <= o.End && o.Start <= r.End }

// Contains reports whether o lies inside r.
func (r Range) Contains(o Range) bool { return r.Start <= o.Start && o.End <= r.End }

// touches reports whether r and o overlap or are adjacent, so that two
// locks of the same owner and mode over them merge into one.
func (r Range) touches(o Range) bool {
	if r.Start > o.Start {
		r, o = o, r
	}
	return r.End == ToEOF || r.End+1 >= o.Start
}

// Owner identifies a lock owner: the client host's caller_name, the
// process (svid) and the opaque owner handle the client sent, and the
// address the requests came from. Two requests with the same Owner never
// conflict with each other. caller_name is whatever the client says it
// is, so the address is part of the owner (as in Linux's lockd, which
// keys hosts by name and address): a request naming another host's
// caller_name from elsewhere is another owner, and can release nothing of
// the real one's.
type Owner struct {
	Caller string
	Svid   int32
	OH     string
	Addr   netip.Addr // zero when not known (tests, the admin API)
}

// Holder describes a held lock, as TEST reports it.
type Holder struct {
	Owner     Owner
	Exclusive bool
	Range     Range
}

// Limits bound what the lock table holds, so that a flood of requests is
// answered NLM4_DENIED_NOLOCKS instead of exhausting memory. Zero fields
// take the defaults.
type Limits struct {
	MaxLocks          int // byte-range locks and share reservations in total (default 65536)
	MaxLocksPerOwner  int // locks of one owner across all files (default 4096)
	MaxOwners         int // distinct owners holding locks (default 16384)
	MaxWaiters        int // queued blocking requests in total (default 4096)
	MaxWaitersPerFile int // queued blocking requests on one file (default 256)
}

// DefaultLimits are the limits used for zero fields.
var DefaultLimits = Limits{
	MaxLocks:          65536,
	MaxLocksPerOwner:  4096,
	MaxOwners:         16384,
	MaxWaiters:        4096,
	MaxWaitersPerFile: 256,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxLocks > 0 {
		d.MaxLocks = l.MaxLocks
	}
	if l.MaxLocksPerOwner > 0 {
		d.MaxLocksPerOwner = l.MaxLocksPerOwner
	}
	if l.MaxOwners > 0 {
		d.MaxOwners = l.MaxOwners
	}
	if l.MaxWaiters > 0 {
		d.MaxWaiters = l.MaxWaiters
	}
	if l.MaxWaitersPerFile > 0 {
		d.MaxWaitersPerFile = l.MaxWaitersPerFile
	}
	return d
}

// LockRequest asks for a byte-range lock.
type LockRequest struct {
	File      string // the file handle's bytes
	Volume    string // the volume the file belongs to
	Owner     Owner
	Exclusive bool
	Range     Range
	// Block queues the request when it conflicts, instead of denying it.
	Block bool
	// Data is kept with a queued request and handed back to OnGrant.
	Data any
}

// Waiter is a queued blocking lock request. Once granted it stays
// "provisional" until the owner's side confirms it (Confirm, or a repeat
// of the same request, or an unlock) or the grant is revoked (Revoke).
type Waiter struct {
	File      string
	Volume    string
	Owner     Owner
	Exclusive bool
	Range     Range
	Data      any
}

func (w *Waiter) matches(o Owner, excl bool, r Range) bool {
	return w.Owner == o && w.Exclusive == excl && w.Range == r
}

// Share modes and access (nlm4_share's fsh4_mode and fsh4_access); both
// are bit sets of read (1) and write (2).
const (
	ShareNone  = 0
	ShareRead  = 1
	ShareWrite = 2
	ShareBoth  = 3
)

type lock struct {
	owner *ownerState
	excl  bool
	r     Range
	// since is when the owner first held any of r in this mode: what
	// an operator reads as how long a lock has been held.
	since time.Time
}

type share struct {
	owner        Owner // Svid unused
	mode, access uint32
}

type ownerState struct {
	Owner
	nlocks int
}

type fileState struct {
	key         string
	volume      string
	locks       []lock // sorted by r.Start
	waiters     []*Waiter
	provisional []*Waiter // granted waiters not yet confirmed
	shares      []share
}

func (f *fileState) empty() bool {
	return len(f.locks) == 0 && len(f.waiters) == 0 && len(f.provisional) == 0 && len(f.shares) == 0
}

// conflict returns the first lock of another owner that stops owner
// (nil: an owner with no locks yet) from taking r in the given mode.
func (f *fileState) conflict(owner *ownerState, o Owner, excl bool, r Range) *lock {
	for i := range f.locks {
		l := &f.locks[i]
		if l.r.Start > r.End {
			break
		}
		if (owner != nil && l.owner == owner) || (owner == nil && l.owner.Owner == o) {
			continue
		}
		if l.r.Overlaps(r) && (excl || l.excl) {
			return l
		}
	}
	return nil
}

type clientState struct {
	locks, waiters, shares int
}

// Table is a lock table. It is safe for concurrent use. Methods that can
// grant queued requests call OnGrant, after the table's mutex is released,
// once for each waiter granted, in the order they were granted.
type Table struct {
	lim     Limits
	onGrant func(*Waiter)

	mu       sync.Mutex
	files    map[string]*fileState
	owners   map[Owner]*ownerState
	clients  map[string]*clientState
	nlocks   int // locks + shares
	nwaiters int
}

// NewTable returns an empty table. onGrant may be nil.
func NewTable(lim Limits, onGrant func(*Waiter)) *Table {
	return &Table{
		lim:     lim.withDefaults(),
		onGrant: onGrant,
		files:   make(map[string]*fileState),
		owners:  make(map[Owner]*ownerState),
		clients: make(map[string]*clientState),
	}
}

// Limits returns the limits in force.
func (t *Table) Limits() Limits { return t.lim }

func (t *Table) client(name string) *clientState {
	c := t.clients[name]
	if c == nil {
		c = &clientState{}
		t.clients[name] = c
	}
	return c
}

func (t *Table) tidyClient(name string) {
	if c := t.clients[name]; c != nil && c.locks == 0 && c.waiters == 0 && c.shares == 0 {
		delete(t.clients, name)
	}
}

func (t *Table) tidyFile(f *fileState) {
	if f.empty() {
		delete(t.files, f.key)
	}
}

func (t *Table) file(key, volume string) *fileState {
	f := t.files[key]
	if f == nil {
		f = &fileState{key: key, volume: volume}
		t.files[key] = f
	}
	return f
}

// apply sets owner's coverage of r in f: shared, exclusive, or (unlock)
// none, splitting and merging the owner's locks. It fails, changing
// nothing, when the result would break a limit.
func (t *Table) apply(f *fileState, os *ownerState, r Range, excl, unlock bool) bool {
	var mine []lock
	others := make([]lock, 0, len(f.locks)+1)
	old := 0
	for _, l := range f.locks {
		if l.owner != os {
			others = append(others, l)
			continue
		}
		old++
		if !l.r.Overlaps(r) {
			mine = append(mine, l)
			continue
		}
		if l.r.Start < r.Start {
			mine = append(mine, lock{os, l.excl, Range{l.r.Start, r.Start - 1}, l.since})
		}
		if l.r.End > r.End {
			mine = append(mine, lock{os, l.excl, Range{r.End + 1, l.r.End}, l.since})
		}
	}
	if !unlock {
		since := time.Now()
		// A re-lock of a range held in the same mode is no new hold.
		for _, l := range f.locks {
			if l.owner == os && l.excl == excl && l.r.Overlaps(r) && l.since.Before(since) {
				since = l.since
			}
		}
		mine = append(mine, lock{os, excl, r, since})
	}
	slices.SortFunc(mine, func(a, b lock) int { return cmp.Compare(a.r.Start, b.r.Start) })
	merged := mine[:0]
	for _, l := range mine {
		if n := len(merged); n > 0 && merged[n-1].excl == l.excl && merged[n-1].r.touches(l.r) {
			merged[n-1].r.End = max(merged[n-1].r.End, l.r.End)
			if l.since.Before(merged[n-1].since) {
				merged[n-1].since = l.since
			}
			continue
		}
		merged = append(merged, l)
	}
	delta := len(merged) - old
	if delta > 0 && (os.nlocks+delta > t.lim.MaxLocksPerOwner || t.nlocks+delta > t.lim.MaxLocks) {
		return false
	}
	os.nlocks += delta
	t.nlocks += delta
	t.client(os.Caller).locks += delta
	others = append(others, merged...)
	slices.SortStableFunc(others, func(a, b lock) int { return cmp.Compare(a.r.Start, b.r.Start) })
	f.locks = others
	return true
}

// ownerFor returns owner's state, creating it if create is set and the
// limit on owners allows; nil otherwise.
func (t *Table) ownerFor(o Owner, create bool) *ownerState {
	if os := t.owners[o]; os != nil || !create {
		return os
	}
	if len(t.owners) >= t.lim.MaxOwners {
		return nil
	}
	os := &ownerState{Owner: o}
	t.owners[o] = os
	return os
}

func (t *Table) tidyOwner(os *ownerState) {
	if os != nil && os.nlocks == 0 {
		delete(t.owners, os.Owner)
	}
	if os != nil {
		t.tidyClient(os.Caller)
	}
}

// wake grants, in FIFO order, every queued request of f that no longer
// conflicts with a held lock. Each grant is checked against the locks as
// they stand after the earlier grants of the same pass.
func (t *Table) wake(f *fileState, granted []*Waiter) []*Waiter {
	if len(f.waiters) == 0 {
		return granted
	}
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		os := t.ownerFor(w.Owner, false)
		if f.conflict(os, w.Owner, w.Exclusive, w.Range) == nil {
			if os == nil {
				os = t.ownerFor(w.Owner, true)
			}
			if os != nil && t.apply(f, os, w.Range, w.Exclusive, false) {
				t.nwaiters--
				t.client(w.Owner.Caller).waiters--
				f.provisional = append(f.provisional, w)
				granted = append(granted, w)
				continue
			}
			t.tidyOwner(os)
		}
		kept = append(kept, w)
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
	return granted
}

func (t *Table) unlockAndNotify(granted []*Waiter) {
	t.mu.Unlock()
	if t.onGrant != nil {
		for _, w := range granted {
			t.onGrant(w)
		}
	}
}

// Status is the outcome of a table operation, in NLM4 terms.
type Status = Stat

// LockResult is the outcome of Lock.
type LockResult struct {
	Status Status // Granted, Denied, Blocked or DeniedNoLocks
	// Conflict is a lock in the way, for Denied and Blocked.
	Conflict *Holder
}

// Lock takes a lock or, if it conflicts and req.Block is set, queues it.
// A request that conflicts only with the owner's own locks is granted and
// replaces them over its range (upgrade or downgrade). Repeating a queued
// request does not queue it twice; repeating a request whose grant is
// still provisional confirms the grant.
func (t *Table) Lock(req LockRequest) LockResult {
	t.mu.Lock()
	var granted []*Waiter
	defer func() { t.unlockAndNotify(granted) }()

	f := t.files[req.File]
	os := t.ownerFor(req.Owner, false)
	if f != nil {
		if l := f.conflict(os, req.Owner, req.Exclusive, req.Range); l != nil {
			h := &Holder{Owner: l.owner.Owner, Exclusive: l.excl, Range: l.r}
			if !req.Block {
				return LockResult{Status: StatDenied, Conflict: h}
			}
			for _, w := range f.waiters {
				if w.matches(req.Owner, req.Exclusive, req.Range) {
					w.Data = req.Data
					return LockResult{Status: StatBlocked, Conflict: h}
				}
			}
			if len(f.waiters) >= t.lim.MaxWaitersPerFile || t.nwaiters >= t.lim.MaxWaiters {
				return LockResult{Status: StatDeniedNoLocks, Conflict: h}
			}
			f.waiters = append(f.waiters, &Waiter{
				File: req.File, Volume: f.volume, Owner: req.Owner,
				Exclusive: req.Exclusive, Range: req.Range, Data: req.Data,
			})
			t.nwaiters++
			t.client(req.Owner.Caller).waiters++
			return LockResult{Status: StatBlocked, Conflict: h}
		}
	}
	if os == nil {
		if os = t.ownerFor(req.Owner, true); os == nil {
			return LockResult{Status: StatDeniedNoLocks}
		}
	}
	if f == nil {
		f = t.file(req.File, req.Volume)
	}
	if !t.apply(f, os, req.Range, req.Exclusive, false) {
		t.tidyOwner(os)
		t.tidyFile(f)
		return LockResult{Status: StatDeniedNoLocks}
	}
	t.settle(f, func(w *Waiter) bool { return w.matches(req.Owner, req.Exclusive, req.Range) })
	granted = t.wake(f, granted) // a downgrade may let others in
	return LockResult{Status: StatGranted}
}

// settle drops the provisional grants of f that match.
func (t *Table) settle(f *fileState, match func(*Waiter) bool) int {
	n := 0
	kept := f.provisional[:0]
	for _, w := range f.provisional {
		if match(w) {
			n++
			continue
		}
		kept = append(kept, w)
	}
	clear(f.provisional[len(kept):])
	f.provisional = kept
	return n
}

// Test reports a lock that would stop owner from locking r, or nil.
func (t *Table) Test(file string, owner Owner, excl bool, r Range) *Holder {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[file]
	if f == nil {
		return nil
	}
	l := f.conflict(t.owners[owner], owner, excl, r)
	if l == nil {
		return nil
	}
	return &Holder{Owner: l.owner.Owner, Exclusive: l.excl, Range: l.r}
}

// Unlock releases owner's locks over r, splitting locks that extend past
// it, and cancels a queued request of owner for exactly r. Unlocking bytes
// that are not locked succeeds (NLM semantics). It returns StatGranted, or
// StatDeniedNoLocks when splitting a lock would break the owner's limit.
func (t *Table) Unlock(file string, owner Owner, r Range) Status {
	t.mu.Lock()
	var granted []*Waiter
	defer func() { t.unlockAndNotify(granted) }()
	f := t.files[file]
	if f == nil {
		return StatGranted
	}
	t.removeWaiters(f, func(w *Waiter) bool { return w.Owner == owner && w.Range == r })
	t.settle(f, func(w *Waiter) bool { return w.Owner == owner && w.Range.Overlaps(r) })
	os := t.owners[owner]
	if os != nil {
		if !t.apply(f, os, r, false, true) {
			return StatDeniedNoLocks
		}
		t.tidyOwner(os)
	}
	granted = t.wake(f, granted)
	t.tidyFile(f)
	return StatGranted
}

func (t *Table) removeWaiters(f *fileState, match func(*Waiter) bool) int {
	n := 0
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if match(w) {
			n++
			t.nwaiters--
			t.client(w.Owner.Caller).waiters--
			t.tidyClient(w.Owner.Caller)
			continue
		}
		kept = append(kept, w)
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
	return n
}

// Cancel withdraws a queued request that matches exactly. If the request
// was already granted but the grant is still provisional, the lock is
// released instead, since the owner no longer wants it. It returns
// StatGranted when something was cancelled and StatDenied otherwise.
func (t *Table) Cancel(file string, owner Owner, excl bool, r Range) Status {
	t.mu.Lock()
	var granted []*Waiter
	defer func() { t.unlockAndNotify(granted) }()
	f := t.files[file]
	if f == nil {
		return StatDenied
	}
	match := func(w *Waiter) bool { return w.matches(owner, excl, r) }
	if t.removeWaiters(f, match) > 0 {
		t.tidyFile(f)
		return StatGranted
	}
	if t.settle(f, match) > 0 {
		if os := t.owners[owner]; os != nil {
			// Unlocking never needs to split here: r was granted as a
			// whole, though it may since have merged with other locks.
			if t.apply(f, os, r, false, true) {
				t.tidyOwner(os)
			}
		}
		granted = t.wake(f, granted)
		t.tidyFile(f)
		return StatGranted
	}
	return StatDenied
}

// IsProvisional reports whether w was granted and is still unconfirmed.
func (t *Table) IsProvisional(w *Waiter) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[w.File]
	return f != nil && slices.Contains(f.provisional, w)
}

// Confirm marks a provisional grant as accepted by its owner.
func (t *Table) Confirm(w *Waiter) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.files[w.File]; f != nil {
		t.settle(f, func(x *Waiter) bool { return x == w })
	}
}

// Revoke releases a provisional grant that nobody accepted. It does
// nothing, and reports false, if the grant was confirmed or settled in
// the meantime.
func (t *Table) Revoke(w *Waiter) bool {
	t.mu.Lock()
	var granted []*Waiter
	defer func() { t.unlockAndNotify(granted) }()
	f := t.files[w.File]
	if f == nil || t.settle(f, func(x *Waiter) bool { return x == w }) == 0 {
		return false
	}
	if os := t.owners[w.Owner]; os != nil {
		if t.apply(f, os, w.Range, false, true) {
			t.tidyOwner(os)
		}
	}
	granted = t.wake(f, granted)
	t.tidyFile(f)
	return true
}

// dropLocked removes everything of f whose owner match selects (all of
// it when match is nil) and reports how many locks, waiters and shares
// went.
func (t *Table) dropLocked(f *fileState, match func(Owner) bool) int {
	n := 0
	all := match == nil
	kept := f.locks[:0]
	for _, l := range f.locks {
		if all || match(l.owner.Owner) {
			n++
			l.owner.nlocks--
			t.nlocks--
			t.client(l.owner.Caller).locks--
			t.tidyOwner(l.owner)
			continue
		}
		kept = append(kept, l)
	}
	clear(f.locks[len(kept):])
	f.locks = kept
	n += t.removeWaiters(f, func(w *Waiter) bool { return all || match(w.Owner) })
	t.settle(f, func(w *Waiter) bool { return all || match(w.Owner) })
	keptS := f.shares[:0]
	for _, s := range f.shares {
		if all || match(s.owner) {
			n++
			t.nlocks--
			t.client(s.owner.Caller).shares--
			t.tidyClient(s.owner.Caller)
			continue
		}
		keptS = append(keptS, s)
	}
	clear(f.shares[len(keptS):])
	f.shares = keptS
	return n
}

// FreeAll releases every lock, share and queued request of a client
// host (NLM FREE_ALL, or SM_NOTIFY from a rebooted client), granting
// whatever that lets through. It returns how many items went.
func (t *Table) FreeAll(caller string) int {
	return t.freeAll(caller, func(o Owner) bool { return o.Caller == caller })
}

// FreeAllFrom is FreeAll for what caller holds from addr only: a client
// host's request to free its locks frees nothing that another address
// took under the same caller_name.
func (t *Table) FreeAllFrom(caller string, addr netip.Addr) int {
	return t.freeAll(caller, func(o Owner) bool { return o.Caller == caller && o.Addr == addr })
}

func (t *Table) freeAll(caller string, match func(Owner) bool) int {
	t.mu.Lock()
	var granted []*Waiter
	defer func() { t.unlockAndNotify(granted) }()
	if t.clients[caller] == nil {
		return 0
	}
	n := 0
	for _, f := range t.files {
		if m := t.dropLocked(f, match); m > 0 {
			n += m
			granted = t.wake(f, granted)
		}
		t.tidyFile(f)
	}
	return n
}

// DropFile forgets every lock, share and queued request on a file (say,
// because it was removed). Nothing is granted: nothing is left to grant.
func (t *Table) DropFile(file string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[file]
	if f == nil {
		return 0
	}
	n := t.dropLocked(f, nil)
	delete(t.files, file)
	return n
}

// DropVolume forgets everything on the files of a volume.
func (t *Table) DropVolume(volume string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, f := range t.files {
		if f.volume == volume {
			n += t.dropLocked(f, nil)
			delete(t.files, k)
		}
	}
	return n
}

// Share places a DOS share reservation. A reservation conflicts with one
// of another owner (caller, oh, address) when either's access meets the
// other's deny mode. The same owner sharing again replaces its
// reservation.
func (t *Table) Share(file, volume string, o Owner, mode, access uint32) Status {
	o.Svid = 0
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.file(file, volume)
	defer t.tidyFile(f)
	for _, s := range f.shares {
		if s.owner == o {
			continue
		}
		if access&s.mode != 0 || mode&s.access != 0 {
			return StatDenied
		}
	}
	for i, s := range f.shares {
		if s.owner == o {
			f.shares[i].mode, f.shares[i].access = mode, access
			return StatGranted
		}
	}
	if t.nlocks >= t.lim.MaxLocks {
		return StatDeniedNoLocks
	}
	f.shares = append(f.shares, share{o, mode, access})
	t.nlocks++
	t.client(o.Caller).shares++
	return StatGranted
}

// Unshare removes owner's share reservation, if any.
func (t *Table) Unshare(file string, o Owner) Status {
	o.Svid = 0
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[file]
	if f == nil {
		return StatGranted
	}
	for i, s := range f.shares {
		if s.owner == o {
			f.shares = slices.Delete(f.shares, i, i+1)
			t.nlocks--
			t.client(o.Caller).shares--
			t.tidyClient(o.Caller)
			break
		}
	}
	t.tidyFile(f)
	return StatGranted
}

// ClientActive reports whether a client host has locks, shares or
// queued requests.
func (t *Table) ClientActive(caller string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.clients[caller] != nil
}

// HoldsFrom reports whether caller holds or waits for anything taken
// from addr.
func (t *Table) HoldsFrom(caller string, addr netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients[caller] == nil {
		return false
	}
	for _, f := range t.files {
		for _, l := range f.locks {
			if l.owner.Caller == caller && l.owner.Addr == addr {
				return true
			}
		}
		for _, w := range f.waiters {
			if w.Owner.Caller == caller && w.Owner.Addr == addr {
				return true
			}
		}
		for _, s := range f.shares {
			if s.owner.Caller == caller && s.owner.Addr == addr {
				return true
			}
		}
	}
	return false
}

// Counts returns how many locks (and shares) and queued requests the
// table holds.
func (t *Table) Counts() (locks, waiters int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nlocks, t.nwaiters
}

// Kind says what an Entry is.
type Kind int

// Entry kinds.
const (
	KindLock        Kind = iota // a held lock
	KindProvisional             // a granted request its owner has not yet confirmed (also listed as KindLock)
	KindWaiter                  // a queued blocking request
	KindShare                   // a share reservation
)

func (k Kind) String() string {
	return [...]string{"lock", "provisional", "waiting", "share"}[k]
}

// Entry is one item of the table, for listings.
type Entry struct {
	Kind      Kind
	File      string
	Volume    string
	Owner     Owner // for shares, Svid is 0
	Exclusive bool
	Range     Range
	// ShareMode and ShareAccess, for shares.
	ShareMode, ShareAccess uint32
	// Since is when a granted lock was first held (zero for the others).
	Since time.Time
}

// List returns the table's entries whose volume and client match; an empty
// filter field matches everything. Entries come grouped by file, locks in
// offset order, waiters in queue order.
func (t *Table) List(volume, caller string) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Entry
	keys := make([]string, 0, len(t.files))
	for k, f := range t.files {
		if volume == "" || f.volume == volume {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	ok := func(c string) bool { return caller == "" || c == caller }
	for _, k := range keys {
		f := t.files[k]
		for _, l := range f.locks {
			if ok(l.owner.Caller) {
				out = append(out, Entry{Kind: KindLock, File: k, Volume: f.volume, Owner: l.owner.Owner, Exclusive: l.excl, Range: l.r, Since: l.since})
			}
		}
		for _, w := range f.provisional {
			if ok(w.Owner.Caller) {
				out = append(out, Entry{Kind: KindProvisional, File: k, Volume: f.volume, Owner: w.Owner, Exclusive: w.Exclusive, Range: w.Range})
			}
		}
		for _, w := range f.waiters {
			if ok(w.Owner.Caller) {
				out = append(out, Entry{Kind: KindWaiter, File: k, Volume: f.volume, Owner: w.Owner, Exclusive: w.Exclusive, Range: w.Range})
			}
		}
		for _, s := range f.shares {
			if ok(s.owner.Caller) {
				out = append(out, Entry{Kind: KindShare, File: k, Volume: f.volume, Owner: s.owner, ShareMode: s.mode, ShareAccess: s.access})
			}
		}
	}
	return out
}

// Clients returns the client hosts that have anything in the table.
func (t *Table) Clients() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.clients))
	for c := range t.clients {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
