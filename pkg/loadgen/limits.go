package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// ServeEcho answers every RPC call on l with an empty successful reply:
// the cheapest server possible on this transport, so NULL against it is
// the loopback ceiling for any server. Replies are buffered and flushed
// when no further request is already waiting, as a good server would.
func ServeEcho(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			bw := bufio.NewWriterSize(c, 64<<10)
			rr := rpc.RecordReader{R: br, Max: 1 << 20}
			var buf []byte
			w := xdr.NewWriter(64)
			for {
				rec, err := rr.Read(buf, nil)
				if err != nil {
					return
				}
				buf = rec
				h, err := rpc.ParseCall(xdr.NewReader(rec))
				if err != nil {
					return
				}
				w.Reset()
				w.Uint32(0)
				rpc.WriteAccepted(w, h.XID, rpc.Success)
				rpc.MarkRecord(w.Bytes())
				if _, err := bw.Write(w.Bytes()); err != nil {
					return
				}
				if br.Buffered() == 0 {
					if err := bw.Flush(); err != nil {
						return
					}
				}
			}
		}()
	}
}

// NullOnly measures NULL calls against addr with no MOUNT (the echo
// server has none).
func NullOnly(ctx context.Context, addr string, conns, inflight int, dur time.Duration) (Result, error) {
	var cs []*nfsclient.Client
	for i := 0; i < conns; i++ {
		c, err := nfsclient.Dial(ctx, addr)
		if err != nil {
			return Result{}, err
		}
		defer c.Close()
		cs = append(cs, c)
	}
	t, err := drive(ctx, plan{workers: conns * inflight, dur: dur}, func(ctx context.Context, w int, _ int64) (int, error) {
		return 0, cs[w%conns].Null(ctx)
	})
	if err != nil {
		return Result{}, err
	}
	r := t.result("null", 0)
	r.Conns, r.InFlight = conns, inflight
	r.Note = "RPC echo server on the same transport"
	return r, nil
}

// OpenDirect returns the physical limits as a Stepper labelled "limit":
// the data workloads done straight on dir, the backing directory type the
// servers use, and NULL against an in-process RPC echo server. Sequential
// write is one stream of IOSize writes then fsync (dd conv=fsync); reads
// are O_DIRECT, so they measure the disk (the servers' reads right after
// the write come from the page cache, which over loopback NFS is bound by
// copies, not by the disk); reads and random I/O use `workers` threads.
//
// With cfg.EchoAddr the NULLs go to an echo server there instead, which
// should be a process of its own (`nfsbench echo`), as every real server
// is: waking another process costs more than waking a goroutine of one's
// own, and for one call in flight that is most of a round trip.
func OpenDirect(dir string, cfg Config, workers int) (Stepper, error) {
	p := filepath.Join(dir, fmt.Sprintf("direct-%d.dat", time.Now().UnixNano()))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	d := &direct{cfg: cfg, workers: workers, path: p, f: f, echoAddr: cfg.EchoAddr}
	if d.echoAddr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Close()
			return nil, err
		}
		go ServeEcho(l)
		d.echo, d.echoAddr = l, l.Addr().String()
	}
	return d, nil
}

// alignedBuf returns n bytes aligned for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+blk)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (blk - 1))
	if off != 0 {
		off = blk - off
	}
	return b[off : off+n]
}

// directReader opens the file with O_DIRECT, so reads come from the disk,
// not the page cache: the read limit of the backing store.
func (d *direct) directReader() (*os.File, error) {
	return os.OpenFile(d.path, os.O_RDONLY|syscall.O_DIRECT, 0)
}

type direct struct {
	cfg      Config
	workers  int
	path     string
	f        *os.File
	echo     net.Listener // the in-process echo server, if any
	echoAddr string
}

func (d *direct) Label() string { return "limit" }

func (d *direct) Close() {
	if d.echo != nil {
		d.echo.Close()
	}
	d.f.Close()
	os.Remove(d.path)
}

func (d *direct) Step(ctx context.Context, name string) ([]Result, error) {
	size, ioSize, f := d.cfg.SeqSize, d.cfg.IOSize, d.f
	n := size / int64(ioSize)
	var r Result
	switch name {
	case "null":
		var err error
		if r, err = NullOnly(ctx, d.echoAddr, d.cfg.Conns, d.cfg.InFlight, d.cfg.Duration); err != nil {
			return nil, err
		}
	case "one-meta":
		// The one-call floor: a round trip to the cheapest server there is.
		var err error
		if r, err = NullOnly(ctx, d.echoAddr, 1, 1, min(d.cfg.Duration, 2*time.Second)); err != nil {
			return nil, err
		}
		r.Mode = ModeOne
	case "seqwrite":
		t, err := drive(ctx, plan{workers: 1, total: n}, func(_ context.Context, _ int, i int64) (int, error) {
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			buf := (*bp)[:ioSize]
			fill(buf, i*int64(ioSize))
			return f.WriteAt(buf, i*int64(ioSize))
		})
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := f.Sync(); err != nil {
			return nil, err
		}
		r = t.result("seqwrite", time.Since(t0))
		r.Conns, r.InFlight, r.Note = 1, 1, fmt.Sprintf("%d KiB pwrite, then fsync", ioSize>>10)
	case "seqread":
		df, err := d.directReader()
		if err != nil {
			return nil, err
		}
		defer df.Close()
		bufs := make(chan []byte, d.workers)
		for i := 0; i < d.workers; i++ {
			bufs <- alignedBuf(ioSize)
		}
		t, err := drive(ctx, plan{workers: d.workers, total: n}, func(_ context.Context, _ int, i int64) (int, error) {
			got := <-bufs
			defer func() { bufs <- got }()
			off := i * int64(ioSize)
			if _, err := df.ReadAt(got, off); err != nil && err != io.EOF {
				return 0, err
			}
			want := make([]byte, ioSize)
			return ioSize, check(got, off, want)
		})
		if err != nil {
			return nil, err
		}
		r = t.result("seqread", 0)
		r.Conns, r.InFlight, r.Note = 1, d.workers, fmt.Sprintf("%d KiB O_DIRECT pread by %d threads, compared", ioSize>>10, d.workers)
	case "randread":
		df, err := d.directReader()
		if err != nil {
			return nil, err
		}
		defer df.Close()
		t, err := drive(ctx, plan{workers: d.workers, dur: d.cfg.Duration}, func(_ context.Context, _ int, _ int64) (int, error) {
			off := rand.Int64N(size/blk) * blk
			got := alignedBuf(blk)
			var want [blk]byte
			if _, err := df.ReadAt(got, off); err != nil {
				return 0, err
			}
			return blk, check(got, off, want[:])
		})
		if err != nil {
			return nil, err
		}
		r = t.result("randread", 0)
		r.Conns, r.InFlight, r.Note = 1, d.workers, "4 KiB O_DIRECT pread"
	case "randwrite":
		t, err := drive(ctx, plan{workers: d.workers, dur: d.cfg.Duration}, func(_ context.Context, _ int, _ int64) (int, error) {
			off := rand.Int64N(size/blk) * blk
			var buf [blk]byte
			fill(buf[:], off)
			return f.WriteAt(buf[:], off)
		})
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := f.Sync(); err != nil {
			return nil, err
		}
		r = t.result("randwrite", time.Since(t0))
		r.Conns, r.InFlight, r.Note = 1, d.workers, "4 KiB pwrite, then fsync"
	default:
		return nil, nil
	}
	return []Result{r}, nil
}
