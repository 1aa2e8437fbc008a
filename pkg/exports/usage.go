package exports

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// EncodeKernelHandle packs a kernel file handle (type, then bytes) for
// quota's reconcile walk, which reopens moved directories from it.
func EncodeKernelHandle(fh unix.FileHandle) []byte {
	b := make([]byte, 4, 4+len(fh.Bytes()))
	binary.BigEndian.PutUint32(b, uint32(fh.Type()))
	return append(b, fh.Bytes()...)
}

// openDirByKernelHandle opens a directory of v from EncodeKernelHandle's
// bytes.
func (v *Volume) openDirByKernelHandle(key []byte) (int, error) {
	if len(key) < 4 {
		return -1, errors.New("short handle")
	}
	fh := unix.NewFileHandle(int32(binary.BigEndian.Uint32(key)), key[4:])
	return unix.OpenByHandleAt(v.root.fd, fh, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
}

// Reconcile walks one volume's tree and makes its usage what the tree
// holds. The volume stays served meanwhile (see quota.Volume.Reconcile).
func (t *Table) Reconcile(v *Volume) error {
	start := time.Now()
	fd, err := unix.Openat(v.root.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	res, err := v.Quota.Reconcile(fd, v.openDirByKernelHandle)
	if err != nil {
		t.log.Error("usage reconcile failed; keeping the saved usage", "volume", v.ID, "err", err)
		return err
	}
	lvl := t.log.Info
	if res.Before != res.After {
		lvl = t.log.Warn
	}
	lvl("usage reconciled with the tree", "volume", v.ID, "entries", res.Entries,
		"bytesBefore", res.Before.Bytes, "bytesAfter", res.After.Bytes,
		"inodesBefore", res.Before.Inodes, "inodesAfter", res.After.Inodes,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// ReconcileAll reconciles every volume, parallel walks at a time, and
// returns when all are done or stop is closed.
func (t *Table) ReconcileAll(parallel int, stop <-chan struct{}) {
	if parallel < 1 {
		parallel = 1
	}
	start := time.Now()
	vols := t.Volumes()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, v := range vols {
		select {
		case <-stop:
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if cur, ok := t.Volume(v.ID); ok && cur == v {
				t.Reconcile(v)
			}
		}()
	}
	wg.Wait()
	t.log.Info("usage of every volume reconciled", "volumes", len(vols), "took", time.Since(start).Round(time.Millisecond))
}

// FlushUsage saves every volume's usage that changed.
func (t *Table) FlushUsage() {
	for _, v := range t.Volumes() {
		if v.Quota == nil {
			continue
		}
		if err := v.Quota.Flush(); err != nil {
			t.log.Error("saving volume usage", "volume", v.ID, "err", err)
		}
	}
}

// flushLoop saves usage every interval until stop closes. Between saves,
// a crash loses at most interval's worth of changes, which the reconcile
// walk at the next start recovers.
func (t *Table) flushLoop(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.FlushUsage()
		}
	}
}
