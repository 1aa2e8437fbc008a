// Package nbd is a small NBD server (fixed newstyle handshake, simple
// replies) over a backing file, whose write cache is volatile the way a
// disk's is: a write is held in memory until a FLUSH (or a write with FUA)
// makes it durable, and Crash discards, at random, a part of what was never
// made durable — what a power cut does to a disk with a volatile cache
// that may also reorder its writes. qemu attaches it as a guest disk
// (-blockdev driver=nbd,server.type=unix,...), so the guest's flushes
// (fsync, journal commits) reach here as FLUSH commands: exactly the
// promise a file system needs from its disk, and nothing more.
package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// Protocol constants (https://github.com/NetworkBlockDevice/nbd, doc/proto.md).
const (
	magicNBD       = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt       = 0x49484156454F5054 // "IHAVEOPT"
	magicOptReply  = 0x0003e889045565a9
	magicRequest   = 0x25609513
	magicReply     = 0x67446698
	flagFixed      = 1 << 0 // handshake: fixed newstyle
	flagNoZeroes   = 1 << 1
	clientNoZeroes = 1 << 1

	optExportName = 1
	optAbort      = 2
	optInfo       = 6
	optGo         = 7

	repAck        = 1
	repInfo       = 3
	repErrUnsup   = 1<<31 + 1
	infoExport    = 0
	tflagHasFlags = 1 << 0
	tflagFlush    = 1 << 2
	tflagFUA      = 1 << 3

	cmdRead  = 0
	cmdWrite = 1
	cmdDisc  = 2
	cmdFlush = 3
	cmdFUA   = 1 << 0 // command flag

	errIO    = 5
	errInval = 22

	page = 4096
)

// errPowerCut refuses a request read before a power cut but handled
// after it: the guest that sent it is gone.
var errPowerCut = errors.New("nbd: power cut")

// Disk is a backing file with a volatile write cache, served over a unix
// socket to one client at a time.
type Disk struct {
	f    *os.File
	size int64
	l    net.Listener
	// FlushDelay, set before a client connects, is how long a FLUSH
	// waits before it makes the cache durable (what it covers is decided
	// at the end of the wait): a slow flush widens the window in which a
	// cut finds writes not yet durable.
	FlushDelay time.Duration

	mu      sync.Mutex
	pending map[int64][]byte // page index -> contents not yet durable
	conns   map[net.Conn]struct{}
	epoch   int        // power cuts so far: a connection from before one is dead
	hold    bool       // flushes wait for the cut (HoldFlushes)
	held    int        // flushes waiting
	cond    *sync.Cond // on mu: hold or epoch changed
	stats   Stats
}

// Stats counts what the disk was asked to do.
type Stats struct {
	Writes, Flushes, FUAWrites int64
	// Crashes, and the pages they kept and dropped of those not durable.
	Crashes, Kept, Dropped int64
	// CutsMidFlush counts crashes that found a flush waiting and writes
	// not yet durable.
	CutsMidFlush int64
}

// Serve creates (or reopens) the backing file of size bytes at path and
// serves it on the unix socket sock until Close.
func Serve(path string, size int64, sock string) (*Disk, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &Disk{f: f, size: size, l: l, pending: map[int64][]byte{}, conns: map[net.Conn]struct{}{}}
	d.cond = sync.NewCond(&d.mu)
	go d.accept()
	return d, nil
}

func (d *Disk) accept() {
	for {
		c, err := d.l.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		d.conns[c] = struct{}{}
		d.mu.Unlock()
		go func() {
			d.serve(c)
			c.Close()
			d.mu.Lock()
			delete(d.conns, c)
			d.mu.Unlock()
		}()
	}
}

// Crash is a power cut: it closes every connection (the guest is gone:
// call it after killing qemu) and keeps each page never made durable
// with probability keep, in no particular order, dropping the rest.
func (d *Disk) Crash(keep float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns {
		c.Close()
	}
	d.stats.Crashes++
	if d.held > 0 && len(d.pending) > 0 {
		d.stats.CutsMidFlush++
	}
	d.epoch++
	d.hold = false
	d.cond.Broadcast()
	for idx, p := range d.pending {
		if rand.Float64() < keep {
			d.f.WriteAt(p, idx*page)
			d.stats.Kept++
		} else {
			d.stats.Dropped++
		}
	}
	d.pending = map[int64][]byte{}
}

// HoldFlushes makes every FLUSH wait until the next Crash, which then
// fails it: a test calls it to choose the moment of a cut, then waits for
// Pending to show a flush waiting over writes not durable, and cuts.
func (d *Disk) HoldFlushes() {
	d.mu.Lock()
	d.hold = true
	d.mu.Unlock()
}

// Pending reports the flushes waiting (HoldFlushes) and the pages not
// yet durable.
func (d *Disk) Pending() (flushes, pages int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held, len(d.pending)
}

// Stats returns the counters so far.
func (d *Disk) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Close stops serving; what is not durable is dropped.
func (d *Disk) Close() error {
	d.l.Close()
	d.Crash(0)
	return d.f.Close()
}

func (d *Disk) serve(c net.Conn) {
	d.mu.Lock()
	epoch := d.epoch
	d.mu.Unlock()
	if err := d.handshake(c); err != nil {
		return
	}
	var hdr [28]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		if binary.BigEndian.Uint32(hdr[0:]) != magicRequest {
			return
		}
		flags := binary.BigEndian.Uint16(hdr[4:])
		typ := binary.BigEndian.Uint16(hdr[6:])
		handle := hdr[8:16]
		off := int64(binary.BigEndian.Uint64(hdr[16:]))
		n := int64(binary.BigEndian.Uint32(hdr[24:]))
		var data []byte
		if typ == cmdWrite {
			data = make([]byte, n)
			if _, err := io.ReadFull(c, data); err != nil {
				return
			}
		}
		var code uint32
		var out []byte
		switch {
		case typ == cmdDisc:
			return
		case (typ == cmdRead || typ == cmdWrite) && (off < 0 || n < 0 || off+n > d.size):
			code = errInval
		case typ == cmdRead:
			out = make([]byte, n)
			if err := d.read(out, off); err != nil {
				code = errIO
			}
		case typ == cmdWrite:
			if err := d.write(epoch, data, off, flags&cmdFUA != 0); err != nil {
				code = errIO
			}
		case typ == cmdFlush:
			if err := d.flush(epoch); err != nil {
				code = errIO
			}
		default:
			code = errInval
		}
		var rep [16]byte
		binary.BigEndian.PutUint32(rep[0:], magicReply)
		binary.BigEndian.PutUint32(rep[4:], code)
		copy(rep[8:], handle)
		if code != 0 {
			out = nil
		}
		if _, err := c.Write(append(rep[:], out...)); err != nil {
			return
		}
	}
}

func (d *Disk) read(out []byte, off int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.ReadAt(out, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	for i := off / page; i*page < off+int64(len(out)); i++ {
		p, ok := d.pending[i]
		if !ok {
			continue
		}
		lo, hi := max(off, i*page), min(off+int64(len(out)), (i+1)*page)
		copy(out[lo-off:hi-off], p[lo-i*page:hi-i*page])
	}
	return nil
}

// write puts data into the cache, page by page (a page first written
// partly is filled from what is there), or straight to the file with fua.
func (d *Disk) write(epoch int, data []byte, off int64, fua bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if epoch != d.epoch {
		return errPowerCut
	}
	d.stats.Writes++
	end := off + int64(len(data))
	for i := off / page; i*page < end; i++ {
		p, ok := d.pending[i]
		if !ok {
			p = make([]byte, page)
			if _, err := d.f.ReadAt(p, i*page); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			d.pending[i] = p
		}
		lo, hi := max(off, i*page), min(end, (i+1)*page)
		copy(p[lo-i*page:hi-i*page], data[lo-off:hi-off])
	}
	if fua {
		// FUA makes this write durable, not the others in the cache.
		d.stats.FUAWrites++
		for i := off / page; i*page < end; i++ {
			if _, err := d.f.WriteAt(d.pending[i], i*page); err != nil {
				return err
			}
			delete(d.pending, i)
		}
	}
	return nil
}

func (d *Disk) flush(epoch int) error {
	time.Sleep(d.FlushDelay)
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.hold && epoch == d.epoch {
		d.held++
		d.cond.Wait()
		d.held--
	}
	if epoch != d.epoch {
		return errPowerCut
	}
	d.stats.Flushes++
	for i, p := range d.pending {
		if _, err := d.f.WriteAt(p, i*page); err != nil {
			return err
		}
	}
	d.pending = map[int64][]byte{}
	// The backing file stands for the platter: the host's page cache is
	// not lost in a simulated power cut, so no fsync is needed here.
	return nil
}

// handshake runs the fixed newstyle negotiation, for any export name.
func (d *Disk) handshake(c net.Conn) error {
	var b [18]byte
	binary.BigEndian.PutUint64(b[0:], magicNBD)
	binary.BigEndian.PutUint64(b[8:], magicOpt)
	binary.BigEndian.PutUint16(b[16:], flagFixed|flagNoZeroes)
	if _, err := c.Write(b[:]); err != nil {
		return err
	}
	var cf [4]byte
	if _, err := io.ReadFull(c, cf[:]); err != nil {
		return err
	}
	noZeroes := binary.BigEndian.Uint32(cf[:])&clientNoZeroes != 0
	tflags := uint16(tflagHasFlags | tflagFlush | tflagFUA)
	for {
		var oh [16]byte
		if _, err := io.ReadFull(c, oh[:]); err != nil {
			return err
		}
		if binary.BigEndian.Uint64(oh[0:]) != magicOpt {
			return errors.New("nbd: bad option magic")
		}
		opt := binary.BigEndian.Uint32(oh[8:])
		n := binary.BigEndian.Uint32(oh[12:])
		if n > 4096 {
			return errors.New("nbd: option too long")
		}
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return err
		}
		switch opt {
		case optExportName:
			var r [10 + 124]byte
			binary.BigEndian.PutUint64(r[0:], uint64(d.size))
			binary.BigEndian.PutUint16(r[8:], tflags)
			out := r[:10]
			if !noZeroes {
				out = r[:]
			}
			_, err := c.Write(out)
			return err
		case optAbort:
			d.optReply(c, opt, repAck, nil)
			return errors.New("nbd: client aborted")
		case optInfo, optGo:
			var info [12]byte
			binary.BigEndian.PutUint16(info[0:], infoExport)
			binary.BigEndian.PutUint64(info[2:], uint64(d.size))
			binary.BigEndian.PutUint16(info[10:], tflags)
			if err := d.optReply(c, opt, repInfo, info[:]); err != nil {
				return err
			}
			if err := d.optReply(c, opt, repAck, nil); err != nil {
				return err
			}
			if opt == optGo {
				return nil
			}
		default: // structured replies, meta contexts, ...: simple replies only
			if err := d.optReply(c, opt, repErrUnsup, nil); err != nil {
				return err
			}
		}
	}
}

func (d *Disk) optReply(c net.Conn, opt, typ uint32, data []byte) error {
	var h [20]byte
	binary.BigEndian.PutUint64(h[0:], magicOptReply)
	binary.BigEndian.PutUint32(h[8:], opt)
	binary.BigEndian.PutUint32(h[12:], typ)
	binary.BigEndian.PutUint32(h[16:], uint32(len(data)))
	_, err := c.Write(append(h[:], data...))
	return err
}

// String describes the counters.
func (s Stats) String() string {
	return fmt.Sprintf("%d writes (%d FUA), %d flushes, %d crashes (%d during a flush over writes not durable; pages not durable at the cuts: %d kept, %d dropped)",
		s.Writes, s.FUAWrites, s.Flushes, s.Crashes, s.CutsMidFlush, s.Kept, s.Dropped)
}
