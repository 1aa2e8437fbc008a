package admin

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConns caps the admin API's open connections when
// Config.MaxConns is unset. Its clients are a CSI controller or two and
// an operator's CLI: a few connections. Each is a descriptor taken from
// the ones nfsd needs for its work, and a connection is opened before
// any token is checked, so without a cap anyone who can reach the
// listener could take them all.
const DefaultMaxConns = 64

// handshakeTimeout bounds how long a new connection may take to finish
// its TLS and HTTP/2 handshake, and idleTimeout how long one may stay
// open with no call: connections held open and silent would otherwise
// keep their place under the cap for good.
const (
	handshakeTimeout = 10 * time.Second
	idleTimeout      = 5 * time.Minute
)

// limitListener accepts at most max connections open at once; one more
// is closed as soon as it is accepted (rather than left in the kernel's
// backlog), so its client gets a prompt error.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Int64
	warned  atomic.Int64 // unix nanoseconds of the last warning
	warn    func(open int64, refused int64)
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); n > l.max {
			l.open.Add(-1)
			c.Close()
			refused := l.refused.Add(1)
			// One warning a minute at most: refusals come in floods.
			if now, last := time.Now().UnixNano(), l.warned.Load(); now-last > int64(time.Minute) && l.warned.CompareAndSwap(last, now) {
				l.warn(l.max, refused)
			}
			continue
		}
		return &limitConn{Conn: c, l: l}, nil
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
