package exports

import (
	"golang.org/x/sys/unix"
)

// Capacity is what the backing file system holds and what volumes have
// been promised of it.
type Capacity struct {
	Total, Free int64 // the file system under ROOT/volumes (f_bavail for Free)
	// Promised is what volumes with a byte limit may still grow by:
	// the sum of limit - used, never negative per volume.
	Promised int64
	// Copying is what copies in progress are still expected to write.
	Copying int64
	// Available is Free - Promised - Copying, never negative: what a
	// new volume can be given without over-committing the disk.
	Available               int64
	Limited, Unlimited      int
	TotalInodes, FreeInodes int64
}

// Capacity measures the backing store. Its byte figures are file-system
// blocks, while volume usage is apparent bytes (docs/design.md), so
// sparse files make Promised look smaller than what they could take.
// Volumes without a byte limit can take any free space: Available is not
// a guarantee while there are any (Unlimited counts them).
func (t *Table) Capacity() (Capacity, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(t.volumesDir(), &fs); err != nil {
		return Capacity{}, err
	}
	c := Capacity{
		Total:       int64(fs.Blocks) * fs.Bsize,
		Free:        int64(fs.Bavail) * fs.Bsize,
		TotalInodes: int64(fs.Files),
		FreeInodes:  int64(fs.Ffree),
	}
	for _, v := range t.Volumes() {
		lim := v.Quota.Limits().Bytes
		if lim == 0 {
			c.Unlimited++
			continue
		}
		c.Limited++
		c.Promised += max(0, lim-v.Quota.Usage().Bytes)
	}
	t.opMu.Lock()
	for _, js := range []map[string]*job{t.jobs.creating, t.jobs.snapshots} {
		for _, j := range js {
			c.Copying += max(0, j.expect-j.written.Load())
		}
	}
	t.opMu.Unlock()
	c.Available = max(0, c.Free-c.Promised-c.Copying)
	return c, nil
}
