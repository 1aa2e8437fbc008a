package exports

import (
	"bytes"
	"container/list"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Node is an open file or directory named by a handle. Its O_PATH
// descriptor pins the inode and is the anchor for *at system calls; a
// read-write descriptor for data is opened on first READ or WRITE and kept,
// because opening per call is what makes naive servers slow.
//
// Nodes are reference counted: the descriptors of a node evicted from the
// cache are closed only after its last user releases it, so a descriptor
// number is never reused under a call still using it.
type Node struct {
	Vol    *Volume
	Handle []byte

	fd     int // O_PATH
	ktype  int32
	kh     []byte
	pinned bool // a volume root: never evicted or closed while served

	// A volume root's identity and path, for Volume.encloses (unset for
	// other nodes); path is read on first use and shared by the records
	// UpdateVolume makes.
	dev, ino uint64
	path     *atomic.Pointer[string]

	ioMu       sync.Mutex
	ioFD       int // -1 until opened
	ioWritable bool

	// guarded by nodeCache.mu
	refs    int
	evicted bool
	elem    *list.Element
}

// FD returns the node's O_PATH descriptor.
func (n *Node) FD() int { return n.fd }

// IsRoot reports whether the node is its volume's root directory.
func (n *Node) IsRoot() bool { return n == n.Vol.root }

// Stat returns the node's attributes. A file whose last link is gone is
// stale even though our descriptor still holds its inode.
func (n *Node) Stat(st *unix.Stat_t) error {
	if err := unix.Fstat(n.fd, st); err != nil {
		return err
	}
	if st.Nlink == 0 {
		return ErrStale
	}
	return nil
}

// IOFD returns a descriptor for reading and, if write, writing the file's
// data. It is opened as the server; callers check permissions first.
func (n *Node) IOFD(write bool) (int, error) {
	n.ioMu.Lock()
	defer n.ioMu.Unlock()
	if n.ioFD >= 0 && (n.ioWritable || !write) {
		return n.ioFD, nil
	}
	fh := unix.NewFileHandle(n.ktype, n.kh)
	fd, err := unix.OpenByHandleAt(n.Vol.root.fd, fh, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	writable := err == nil
	if err != nil && !write && (errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ETXTBSY)) {
		fd, err = unix.OpenByHandleAt(n.Vol.root.fd, fh, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	}
	if err != nil {
		if errors.Is(err, unix.ESTALE) {
			return -1, ErrStale
		}
		return -1, err
	}
	if n.ioFD >= 0 {
		unix.Close(n.ioFD)
	}
	n.ioFD, n.ioWritable = fd, writable
	return fd, nil
}

func (n *Node) closeFDs() {
	if n.fd >= 0 {
		unix.Close(n.fd)
		n.fd = -1
	}
	n.ioMu.Lock()
	if n.ioFD >= 0 {
		unix.Close(n.ioFD)
		n.ioFD = -1
	}
	n.ioMu.Unlock()
}

// Resolve turns a handle into a node. The caller must Release it.
// Malformed or forged handles give ErrBadHandle; handles of removed files
// or volumes give ErrStale.
func (t *Table) Resolve(h []byte) (*Node, error) {
	p, err := parseHandle(h)
	if err != nil {
		return nil, err
	}
	t.mu.RLock()
	v := t.byFSID[p.fsid]
	t.mu.RUnlock()
	if v == nil {
		return nil, ErrStale
	}
	if bytes.Equal(h, v.root.Handle) {
		return v.root, nil
	}
	if n := t.nodes.get(string(h)); n != nil {
		if n.Vol == v {
			return n, nil
		}
		// Cached under a volume record that UpdateVolume has replaced:
		// open it again under the current one, with its options.
		t.nodes.release(n)
		t.nodes.remove(string(h))
	}
	// Only handles we minted reach the kernel.
	if !t.sealer.verify(p) {
		return nil, ErrBadHandle
	}
	fd, err := unix.OpenByHandleAt(v.root.fd, unix.NewFileHandle(p.ktype, p.kh), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
			return nil, ErrStale
		}
		return nil, err
	}
	// Defense in depth (contain.go): only a leaked key could seal a
	// handle of an inode elsewhere, so say so loudly.
	if err := v.encloses(fd); err != nil {
		unix.Close(fd)
		if errors.Is(err, errOutside) {
			t.log.Warn("refused a correctly sealed handle of an inode outside its volume: has the handle key leaked?", "volume", v.ID)
		}
		return nil, ErrStale
	}
	n := &Node{Vol: v, Handle: append([]byte(nil), h...), fd: fd, ktype: p.ktype, kh: append([]byte(nil), p.kh...), ioFD: -1}
	return t.nodes.add(n), nil
}

// Release ends a use of a node returned by Resolve.
func (t *Table) Release(n *Node) {
	if n != nil && !n.pinned {
		t.nodes.release(n)
	}
}

// Forget drops a handle's cached descriptors (after its file was removed
// or replaced), so the inode's space is freed as soon as the file system
// frees it rather than when the cache would have evicted it.
func (t *Table) Forget(h []byte) { t.nodes.remove(string(h)) }

// HandleAt mints the handle of name inside directory dirfd of volume v,
// without following a final symlink. Run it as the caller (fscred.Do)
// so that search permission on the directory is checked.
func (t *Table) HandleAt(v *Volume, dirfd int, name string) ([]byte, error) {
	flags := 0
	if name == "" {
		flags = unix.AT_EMPTY_PATH
	}
	fh, _, err := unix.NameToHandleAt(dirfd, name, flags)
	if err != nil {
		return nil, err
	}
	return t.sealer.seal(v.FSID, fh.Type(), fh.Bytes())
}

// The node cache's size. A tree larger than the cache makes an LRU miss
// on every access of a sweep over it (each GETATTR of a stat-all pays
// open_by_handle_at, the MAC and a close, ~35 times a hit's cost), so the
// cache should hold the working set of a large tree, bounded by what a
// node costs:
//   - descriptors: up to two each (O_PATH, and read-write once used for
//     data), out of the process's limit less fdReserve for connections,
//     data copies and state files (Go lifts the soft limit to the hard
//     one at start-up);
//   - memory: about 1 KiB of Go heap (node, handles, map and list
//     entries) plus the dentry and inode an open descriptor keeps in the
//     kernel's caches (charged to the container), ~2 KiB together
//     (nodeCost); at most 1/64 of the memory nfsd may use: the machine's,
//     or its cgroup's limit if lower.
const (
	nodeCost        = 2 << 10
	fdReserve       = 1024
	maxOpenNodesCap = 1 << 20
	minOpenNodes    = 64
)

// DefaultMaxOpenNodes is the node cache's size when nothing else is said:
// what memory and the descriptor limit allow.
func DefaultMaxOpenNodes() int {
	n := min(uint64(maxOpenNodesCap), memoryLimit()/64/nodeCost)
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		n = min(n, (max(rl.Cur, fdReserve)-fdReserve)/2)
	}
	return int(max(n, minOpenNodes))
}

// memoryLimit is the machine's memory, or the memory limit of the cgroup
// nfsd runs in (as a container sees it, v2 or v1) if lower.
func memoryLimit() uint64 {
	mem := uint64(1) << 62
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		mem = uint64(si.Totalram) * uint64(si.Unit)
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if lim, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil { // "max": none
			mem = min(mem, lim)
		}
	}
	return mem
}

// nodeCache is a bounded LRU of open nodes keyed by handle.
type nodeCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*Node
	lru list.List // front: most recently used
}

func newNodeCache(max int) *nodeCache {
	return &nodeCache{max: max, m: make(map[string]*Node)}
}

func (c *nodeCache) get(key string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.m[key]
	if n == nil {
		return nil
	}
	n.refs++
	c.lru.MoveToFront(n.elem)
	return n
}

// add inserts n, or, if another caller raced it in, returns that one and
// closes n.
func (c *nodeCache) add(n *Node) *Node {
	c.mu.Lock()
	if old := c.m[string(n.Handle)]; old != nil {
		old.refs++
		c.lru.MoveToFront(old.elem)
		c.mu.Unlock()
		n.closeFDs()
		return old
	}
	n.refs = 1
	n.elem = c.lru.PushFront(n)
	c.m[string(n.Handle)] = n
	var victims []*Node
	for c.lru.Len() > c.max {
		v := c.lru.Back().Value.(*Node)
		if victim := c.unlinkLocked(v); victim != nil {
			victims = append(victims, victim)
		}
	}
	c.mu.Unlock()
	for _, v := range victims {
		v.closeFDs()
	}
	return n
}

// unlinkLocked removes n from the cache and returns it if nobody uses it
// (so the caller closes it outside the lock).
func (c *nodeCache) unlinkLocked(n *Node) *Node {
	if n.evicted {
		return nil
	}
	c.lru.Remove(n.elem)
	delete(c.m, string(n.Handle))
	n.evicted = true
	if n.refs == 0 {
		return n
	}
	return nil
}

func (c *nodeCache) release(n *Node) {
	c.mu.Lock()
	n.refs--
	closeIt := n.evicted && n.refs == 0
	c.mu.Unlock()
	if closeIt {
		n.closeFDs()
	}
}

func (c *nodeCache) remove(key string) {
	c.mu.Lock()
	n := c.m[key]
	var victim *Node
	if n != nil {
		victim = c.unlinkLocked(n)
	}
	c.mu.Unlock()
	if victim != nil {
		victim.closeFDs()
	}
}

func (c *nodeCache) closeAll() {
	c.mu.Lock()
	var victims []*Node
	for _, n := range c.m {
		if v := c.unlinkLocked(n); v != nil {
			victims = append(victims, v)
		}
	}
	c.mu.Unlock()
	for _, v := range victims {
		v.closeFDs()
	}
}

// Len returns the number of cached nodes.
func (t *Table) CachedNodes() int {
	t.nodes.mu.Lock()
	defer t.nodes.mu.Unlock()
	return len(t.nodes.m)
}

// dropVolume closes the cached nodes of a volume leaving the table, so
// its tree's space is freed as soon as it is removed.
func (c *nodeCache) dropVolume(v *Volume) {
	c.mu.Lock()
	var victims []*Node
	for _, n := range c.m {
		if n.Vol == v {
			if victim := c.unlinkLocked(n); victim != nil {
				victims = append(victims, victim)
			}
		}
	}
	c.mu.Unlock()
	for _, n := range victims {
		n.closeFDs()
	}
}
