package rpcserver

import (
	"net/netip"
	"time"
)

// UDP replies are rate-limited per source address. A datagram's source
// can be forged, so without a limit the server would answer a flood of
// small forged calls with bigger replies to the forged address (a
// portmapper DUMP reply is about ten times its call): a reflector. Each
// source has a token bucket of reply bytes (Limits.UDPBytesPerSource a
// second, four seconds' worth of burst); a call from a source whose bucket
// is empty is dropped unread, and a reply may take its bucket into debt.
// So whatever arrives, no address is sent more than the rate allows.

// maxUDPSources bounds the buckets kept; when full, buckets that have
// refilled are forgotten, and if none has, all are: forged sources cannot
// make the table grow, and resetting costs a forger 4096 datagrams for one
// burst.
const maxUDPSources = 4096

type udpBucket struct {
	tokens float64
	last   time.Time
}

// udpLimiter is one UDP socket's buckets; ServeUDP uses it from one
// goroutine.
type udpLimiter struct {
	rate, burst float64
	m           map[netip.Addr]*udpBucket
}

func newUDPLimiter(bytesPerSec int) *udpLimiter {
	return &udpLimiter{rate: float64(bytesPerSec), burst: 4 * float64(bytesPerSec), m: make(map[netip.Addr]*udpBucket)}
}

// allow reports whether a call from ip may be answered now.
func (l *udpLimiter) allow(ip netip.Addr, now time.Time) bool {
	b := l.m[ip]
	if b == nil {
		if len(l.m) >= maxUDPSources {
			l.prune(now)
		}
		b = &udpBucket{tokens: l.burst, last: now}
		l.m[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+l.rate*now.Sub(b.last).Seconds())
	b.last = now
	return b.tokens > 0
}

// charge takes a reply of n bytes to ip from its bucket.
func (l *udpLimiter) charge(ip netip.Addr, n int) {
	if b := l.m[ip]; b != nil {
		b.tokens -= float64(n)
	}
}

func (l *udpLimiter) prune(now time.Time) {
	for ip, b := range l.m {
		if b.tokens+l.rate*now.Sub(b.last).Seconds() >= l.burst {
			delete(l.m, ip)
		}
	}
	if len(l.m) >= maxUDPSources {
		clear(l.m)
	}
}
