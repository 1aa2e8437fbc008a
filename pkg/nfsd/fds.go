package nfsd

import (
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/rpcserver"
)

// Descriptors. Every client connection is a descriptor, and so is every
// file and directory the server works on (the node cache keeps two per
// recently used file: an O_PATH one and one for I/O), all under one
// RLIMIT_NOFILE. If connections could take them all, a connected client
// would get NFS3ERR_IO for want of a descriptor to open its file. So the
// limit is split: a reserve for calls in flight, listeners and state
// files; the node cache; and what is left for connections
// (rpcserver.Limits.MaxConns, at which the connection idle longest is
// closed for a new one).

// splitFDs divides nofile descriptors between connections and the node
// cache (in nodes, two descriptors each). The node cache gets the size it
// wants (exports.DefaultMaxOpenNodes: by memory and descriptors) unless
// that would leave connections fewer than min(a quarter, 1024) of what the
// reserve leaves.
func splitFDs(nofile, inflight, wantNodes int) (conns, nodes int) {
	// Calls in flight hold a few nodes beyond the cache's bound, and
	// open a directory or a temporary file now and then.
	reserve := min(256+4*inflight, nofile/2)
	avail := nofile - reserve
	conns = max(avail-2*wantNodes, min(avail/4, 1024))
	nodes = min(wantNodes, (avail-conns)/2)
	return max(conns, 1), max(nodes, 1)
}

// fdLimits fills lim.MaxConns, unless set, and returns the node cache's
// size, both from the current descriptor limit.
func fdLimits(lim rpcserver.Limits, log *slog.Logger) (rpcserver.Limits, int) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the open file limit; using default connection cap", "err", err)
		return lim, exports.DefaultMaxOpenNodes()
	}
	inflight := lim.Inflight
	if inflight <= 0 {
		inflight = rpcserver.DefaultLimits.Inflight
	}
	nofile := int(min(rl.Cur, 1<<30))
	want := exports.DefaultMaxOpenNodes()
	conns, nodes := splitFDs(nofile, inflight, want)
	if lim.MaxConns <= 0 {
		lim.MaxConns = conns
	}
	if nodes < want {
		log.Warn("the open file limit is low: the node cache is smaller", "nofile", nofile, "nodes", nodes, "max_conns", lim.MaxConns)
	}
	return lim, nodes
}
