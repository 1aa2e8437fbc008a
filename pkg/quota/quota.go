// Package quota keeps each volume's usage and enforces its limits.
//
// Unit: apparent bytes. A volume's byte usage is the sum of st_size over
// the regular files and symlinks in it, each inode counted once however
// many hard links it has (what `du --apparent-size --count-links=no`
// reports, minus directory sizes). Directories count as inodes but not
// bytes: their st_size is a file-system detail that clients cannot
// predict. Sparse files count their apparent size, holes included, so a
// client cannot exceed its PVC by writing at a large offset and the figure
// never depends on how the backing file system allocates blocks. Inode
// usage is the number of inodes below the volume root (root excluded).
//
// Why apparent bytes: the growth of a WRITE is max(0, off+len-size),
// known before the write from one fstat, so every check is O(1) and
// exact; allocated blocks would only be known after the write and vary
// with file-system internals (delayed allocation, extents, metadata).
//
// Exactness under concurrency: every change to one inode's size runs
// under a lock striped by the inode's handle and measures the size before
// the change, so the usage counter moves by exactly what the file moved
// by. The growth is reserved before the change and admitted only if it
// fits, atomically with respect to every other reservation, then
// corrected if the change failed. So concurrent writers to one volume
// never take it past its limit (the bound "overshoot <= writes in flight"
// holds with zero), and once they finish usage equals the tree.
//
// Durability: usage is saved atomically every few seconds and at clean
// shutdown (Flush), and every start walks each tree (Reconcile) while the
// volume is served, replacing the saved figure with what the tree holds.
//
// After a crash the saved figure may be seconds old, and the walk takes a
// while: enforcing "saved usage plus live changes" meanwhile would admit
// writes the true usage refuses (a client writes up to its limit, nfsd is
// killed before the next save, and after the restart the limit is open
// again by what the lost save missed). So the saved file also holds a
// ceiling, an upper bound of the usage that is made durable before any
// growth past it is admitted: a reservation that takes usage over the
// durable ceiling raises it (by a headroom, so this costs one synchronous
// save per headroom of growth, not one per write) and waits for that save
// before it returns. On load the usage is taken to be the ceiling, so
// until the walk replaces it by the truth, enforcement counts at least
// what the tree holds; the price is that during the walk a volume within
// one headroom of its limit refuses growth it could have had (EDQUOT), and
// df shows up to one headroom more used. Saves (Flush) lower the ceiling
// back to usage plus one headroom.
package quota

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
)

// ErrQuota is returned when a change would take a volume over a limit.
var ErrQuota = errors.New("quota: volume limit exceeded")

// Usage is what a volume holds.
type Usage struct {
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
}

// Limits bound a volume; zero means no limit.
type Limits struct {
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
}

// stripes per volume: enough that unrelated files rarely share a lock,
// small enough (512 bytes) that 10,000 volumes cost 5 MB.
const stripes = 64

var seed = maphash.MakeSeed()

// Volume accounts one volume.
type Volume struct {
	limBytes  atomic.Int64
	limInodes atomic.Int64

	flushMu sync.Mutex // one save at a time
	mu      sync.Mutex // guards used, ceil, rec, dirty, path
	used    Usage
	// ceil is at most the ceiling saved on disk, and is what used may
	// reach before a reservation must save a higher one (see the package
	// comment). It is lowered before a save that lowers it, raised only
	// after a save that raises it.
	ceil  Usage
	rec   *walk // non-nil while a reconcile walk runs
	dirty bool

	// reconciled is set once the usage has been checked against the tree
	// since this process started.
	reconciled atomic.Bool

	locks     [stripes]sync.Mutex // inodes, by handle
	nameLocks [stripes]sync.Mutex // directory entries, by directory handle and name

	path string // where usage persists ("" = not persisted); guarded by mu
}

// persisted is the on-disk form of a volume's usage.
type persisted struct {
	Usage
	// Ceiling bounds the usage from above until the next save (zero in
	// files written before it existed: then Usage is all there is).
	Ceiling Usage     `json:"ceiling"`
	Saved   time.Time `json:"saved"`
}

// New returns the accountant of a volume whose usage persists at path
// ("" for none). A previously saved usage is loaded as its ceiling, an
// upper bound even after a crash, and enforced until a reconcile walk
// replaces it by what the tree holds.
func New(path string, lim Limits) (*Volume, error) {
	v := &Volume{path: path}
	v.SetLimits(lim)
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			var p persisted
			if err := json.Unmarshal(data, &p); err != nil {
				return nil, err
			}
			v.used = Usage{Bytes: max(p.Bytes, p.Ceiling.Bytes), Inodes: max(p.Inodes, p.Ceiling.Inodes)}
			v.ceil = v.used
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	return v, nil
}

// SetLimits changes the limits; the next reservation sees them. It does
// not look at usage: for loading, and for raising a limit. Lowering one
// on a volume in use goes through Lower.
func (v *Volume) SetLimits(l Limits) {
	v.limBytes.Store(l.Bytes)
	v.limInodes.Store(l.Inodes)
}

// BelowUsageError is Lower's refusal: a new limit is below what the
// volume holds.
type BelowUsageError struct {
	Usage  Usage
	Limits Limits
}

// Lowers reports whether n lowers any limit of o.
func Lowers(n, o Limits) bool { return lowers(n.Bytes, o.Bytes) || lowers(n.Inodes, o.Inodes) }

// lowers reports whether limit n is lower than limit o (0: none).
func lowers(n, o int64) bool { return n > 0 && (o == 0 || n < o) }

func (e *BelowUsageError) Error() string {
	if e.Limits.Bytes > 0 && e.Usage.Bytes > e.Limits.Bytes {
		return fmt.Sprintf("the volume holds %d bytes, more than the new limit %d", e.Usage.Bytes, e.Limits.Bytes)
	}
	return fmt.Sprintf("the volume holds %d inodes, more than the new limit %d", e.Usage.Inodes, e.Limits.Inodes)
}

// Lower sets limits l if usage is within those of them that are lower
// than the current ones, else returns a
// *BelowUsageError and changes nothing. The check and the change are one
// step under the mutex every Reserve holds, so a growth admitted under
// the old limits is counted in the usage checked, and every later one is
// checked against l: once Lower returns nil, usage stays within l
// whatever writers were in flight. (Checking usage first and then calling
// SetLimits lets reservations made in between take the volume past l.)
func (v *Volume) Lower(l Limits) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	// Only a limit being lowered is checked: a volume already over its
	// inode limit (found by a reconcile walk) may still get a new byte
	// limit.
	cur := v.Limits()
	if (lowers(l.Bytes, cur.Bytes) && v.used.Bytes > l.Bytes) || (lowers(l.Inodes, cur.Inodes) && v.used.Inodes > l.Inodes) {
		return &BelowUsageError{Usage: v.used, Limits: l}
	}
	v.SetLimits(l)
	return nil
}

// Limits returns the limits.
func (v *Volume) Limits() Limits {
	return Limits{Bytes: v.limBytes.Load(), Inodes: v.limInodes.Load()}
}

// Usage returns the current usage.
func (v *Volume) Usage() Usage {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.used
}

// MarkReconciled says the usage is known to match the tree without a
// walk: the volume's tree was just made and counted as it was.
func (v *Volume) MarkReconciled() { v.reconciled.Store(true) }

// Reconciled reports whether usage has been checked against the tree.
func (v *Volume) Reconciled() bool { return v.reconciled.Load() }

// Lock takes the lock that serialises size changes of the inode named by
// key (its file handle, identical for all hard links of one inode) and
// returns its unlock.
func (v *Volume) Lock(key []byte) func() {
	m := &v.locks[maphash.Bytes(seed, key)%stripes]
	m.Lock()
	return m.Unlock
}

// Name is a directory entry: the directory's handle and a name in it.
type Name struct {
	Dir  []byte
	Name string
}

// LockNames takes the locks of directory entries, for an operation that
// makes, removes or replaces them, and returns their unlock. While they
// are held no other such operation on those names runs, so a creator can
// tell the entry it made from one made or removed beside it. An operation
// takes all its name locks in one call (they are taken in a fixed order,
// each stripe once), and before any inode lock, never while holding one:
// so no two operations can wait for each other.
func (v *Volume) LockNames(names ...Name) func() {
	var idx [2]int
	held := idx[:0]
	for _, n := range names {
		var h maphash.Hash
		h.SetSeed(seed)
		h.Write(n.Dir)
		h.WriteByte(0)
		h.WriteString(n.Name)
		i := int(h.Sum64() % stripes)
		if !slices.Contains(held, i) {
			held = append(held, i)
		}
	}
	slices.Sort(held)
	for _, i := range held {
		v.nameLocks[i].Lock()
	}
	return func() {
		for _, i := range held {
			v.nameLocks[i].Unlock()
		}
	}
}

// Reserve admits a growth of bytes and inodes if it keeps the volume
// within its limits, and charges it. Negative or zero growth is always
// admitted. It returns ErrQuota and changes nothing otherwise, or an
// error when a growth past the durable ceiling could not be saved.
func (v *Volume) Reserve(bytes, inodes int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if bytes > 0 {
		if lim := v.limBytes.Load(); lim > 0 && v.used.Bytes+bytes > lim {
			return ErrQuota
		}
	}
	if inodes > 0 {
		if lim := v.limInodes.Load(); lim > 0 && v.used.Inodes+inodes > lim {
			return ErrQuota
		}
	}
	v.addLocked(bytes, inodes)
	if v.covered() {
		return nil
	}
	// Over the durable ceiling: the growth is admitted only once a
	// higher one is saved, so that a crash cannot forget it.
	v.mu.Unlock()
	err := v.raiseCeiling()
	v.mu.Lock()
	if err != nil {
		v.addLocked(-bytes, -inodes)
		return fmt.Errorf("quota: saving the usage ceiling: %w", err)
	}
	return nil
}

// covered reports whether used is within the durable ceiling. v.mu held.
func (v *Volume) covered() bool {
	return v.used.Bytes <= v.ceil.Bytes && v.used.Inodes <= v.ceil.Inodes
}

// headroom is how far above usage a raised ceiling goes: 1/64 of the
// limit, at least 1 MiB and 64 inodes, at most 256 MiB and 65,536 inodes
// (no limit: the most). v.mu held.
func (v *Volume) headroom() Usage {
	h := func(lim, least, most int64) int64 {
		if lim <= 0 {
			return most
		}
		return min(most, max(least, lim/64))
	}
	return Usage{Bytes: h(v.limBytes.Load(), 1<<20, 256<<20), Inodes: h(v.limInodes.Load(), 64, 1<<16)}
}

// raiseCeiling saves a ceiling of usage plus headroom, unless another
// call has already covered the usage.
func (v *Volume) raiseCeiling() error {
	v.flushMu.Lock()
	defer v.flushMu.Unlock()
	v.mu.Lock()
	if v.covered() {
		v.mu.Unlock()
		return nil
	}
	h := v.headroom()
	target := Usage{Bytes: max(v.ceil.Bytes, v.used.Bytes+h.Bytes), Inodes: max(v.ceil.Inodes, v.used.Inodes+h.Inodes)}
	err := v.saveLocked(target) // unlocks v.mu
	if err == nil {
		v.mu.Lock()
		v.ceil = Usage{Bytes: max(v.ceil.Bytes, target.Bytes), Inodes: max(v.ceil.Inodes, target.Inodes)}
		v.mu.Unlock()
	}
	return err
}

// saveLocked writes the usage and ceiling to the volume's file; it is
// called with flushMu and v.mu held and releases v.mu before writing.
// Not persisted (no path): nothing to write.
func (v *Volume) saveLocked(ceiling Usage) error {
	path := v.path
	p := persisted{Usage: v.used, Ceiling: ceiling, Saved: time.Now().UTC()}
	v.dirty = false
	v.mu.Unlock()
	if path == "" {
		return nil
	}
	data, _ := json.Marshal(p)
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		v.mu.Lock()
		v.dirty = true
		v.mu.Unlock()
		return err
	}
	return nil
}

// Add charges (or, negative, frees) usage without checking limits: for
// corrections after a change and for space that was freed.
func (v *Volume) Add(bytes, inodes int64) {
	if bytes == 0 && inodes == 0 {
		return
	}
	v.mu.Lock()
	v.addLocked(bytes, inodes)
	v.mu.Unlock()
}

func (v *Volume) addLocked(bytes, inodes int64) {
	v.used.Bytes += bytes
	v.used.Inodes += inodes
	v.dirty = true
	if v.rec != nil {
		// Every inode an operation changes was touched (or created)
		// first, so the walk has counted its state before the change:
		// the change belongs in the walk's sum too.
		v.rec.sum.Bytes += bytes
		v.rec.sum.Inodes += inodes
	}
}

// Touch must be called, under the inode's Lock, before an operation
// changes the size or link count of an existing inode, or moves it, with
// the inode's state before the change. While a reconcile walk runs it
// counts the inode now if the walk has not, so that the walk's total
// stays exact whatever the order of walk and operation. dirKey is the
// handle of a directory being moved (so the walk still lists it wherever
// it lands); nil otherwise.
func (v *Volume) Touch(ino uint64, bytes int64, dirKey []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.rec == nil {
		return
	}
	v.rec.see(ino, bytes)
	if dirKey != nil {
		v.rec.enqueue(ino, dirKey)
	}
}

// Created records an inode an operation just made (its charge is added
// separately), so that a running walk does not count it again.
func (v *Volume) Created(ino uint64) {
	v.mu.Lock()
	if v.rec != nil {
		v.rec.seen[ino] = struct{}{}
	}
	v.mu.Unlock()
}

// Flush saves the usage if it changed since the last save, with the
// ceiling lowered to usage plus one headroom. The file is written
// atomically (temporary file, fsync, rename, directory fsync).
func (v *Volume) Flush() error {
	// One save at a time, so an older figure never lands after a newer.
	v.flushMu.Lock()
	defer v.flushMu.Unlock()
	v.mu.Lock()
	h := v.headroom()
	lower := Usage{
		Bytes:  max(v.used.Bytes, min(v.ceil.Bytes, v.used.Bytes+h.Bytes)),
		Inodes: max(v.used.Inodes, min(v.ceil.Inodes, v.used.Inodes+h.Inodes)),
	}
	if (!v.dirty && lower == v.ceil) || v.path == "" {
		v.mu.Unlock()
		return nil
	}
	// Lowered in memory first: until the new file lands the old, higher
	// ceiling on disk still bounds usage, and a reservation past the
	// lower one waits for flushMu and then raises it again. Raised (when
	// usage was over it, as after a walk found more) only once saved.
	v.ceil = Usage{Bytes: min(v.ceil.Bytes, lower.Bytes), Inodes: min(v.ceil.Inodes, lower.Inodes)}
	if err := v.saveLocked(lower); err != nil {
		return err
	}
	v.mu.Lock()
	v.ceil = lower // nobody else saves while flushMu is held
	v.mu.Unlock()
	return nil
}

// Retire stops saving usage: the volume left the table, and a walk or
// flush still running must not write its file back. A save in progress
// finishes first, so once Retire returns the file may be removed.
func (v *Volume) Retire() {
	v.flushMu.Lock()
	defer v.flushMu.Unlock()
	v.mu.Lock()
	v.path = ""
	v.mu.Unlock()
}

// Over reports whether usage exceeds a limit (possible after a limit
// was found exceeded by a reconcile walk, or on a clone).
func (v *Volume) Over() bool {
	u, l := v.Usage(), v.Limits()
	return (l.Bytes > 0 && u.Bytes > l.Bytes) || (l.Inodes > 0 && u.Inodes > l.Inodes)
}
