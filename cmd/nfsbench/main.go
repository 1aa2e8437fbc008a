// Command nfsbench is an NFSv3 load generator and the tooling of
// `make bench`:
//
//	nfsbench run     drive a server (MOUNT, then the workloads), print results
//	nfsbench limits  the physical limits: the I/O done directly on a
//	                 directory, and NULL against an in-process RPC echo server
//	nfsbench echo    serve the RPC echo server on an address
//	nfsbench report  turn JSON-lines results into docs/benchmarks.md tables and a PNG chart
//
// Results are JSON lines on stdout (or --json FILE, appended) and a table
// on stderr. nfsbench exits non-zero if any workload failed: an NFS error
// status, a short transfer or data that differs from what was written.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/benchreport"
	"github.com/rwxnfs/rwxnfs/pkg/loadgen"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "limits":
		err = cmdLimits(os.Args[2:])
	case "echo":
		err = cmdEcho(os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfsbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nfsbench run|limits|echo|report [flags]   (nfsbench CMD -h for flags)")
	os.Exit(2)
}

// sink writes each result as a JSON line and remembers it for the table.
type sink struct {
	out  io.Writer
	rows []loadgen.Result
}

func newSink(path string) (*sink, func(), error) {
	if path == "" || path == "-" {
		return &sink{out: os.Stdout}, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return &sink{out: f}, func() { f.Close() }, nil
}

func (s *sink) emit(r loadgen.Result) {
	b, _ := json.Marshal(r)
	fmt.Fprintf(s.out, "%s\n", b)
	s.rows = append(s.rows, r)
	fmt.Fprintln(os.Stderr, benchreport.Row(r))
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var t loadgen.Target
	var cfg loadgen.Config
	fs.StringVar(&t.Host, "host", "127.0.0.1", "server address")
	fs.IntVar(&t.NFSPort, "nfs-port", 0, "NFS port (0: ask the portmapper)")
	fs.IntVar(&t.MountPort, "mount-port", 0, "MOUNT port (0: ask the portmapper)")
	fs.IntVar(&t.NLMPort, "nlm-port", 0, "NLM port (0: ask the portmapper)")
	fs.IntVar(&t.Portmap, "portmap-port", 111, "portmapper port")
	fs.StringVar(&t.Export, "export", "/", "path to MOUNT")
	fs.StringVar(&cfg.Label, "label", "server", "server name in the results")
	fs.IntVar(&cfg.Conns, "conns", 8, "NFS connections (like nconnect=)")
	fs.IntVar(&cfg.InFlight, "inflight", 16, "RPCs in flight per connection")
	fs.DurationVar(&cfg.Duration, "duration", 8*time.Second, "length of each timed workload")
	size := fs.Int64("size-mib", 1024, "sequential file size, MiB")
	io := fs.Int("io-kib", 1024, "sequential READ/WRITE size, KiB")
	fs.IntVar(&cfg.Files, "files", 10000, "small files for create/stat/remove")
	fs.IntVar(&cfg.MetaClients, "meta-clients", 8, "connections the small files are spread over")
	fs.IntVar(&cfg.DirEntries, "dir-entries", 100000, "entries of the READDIRPLUS directory")
	fs.StringVar(&cfg.Backing, "backing", "", "the export's directory on this machine, to fill the READDIRPLUS directory quickly")
	fs.BoolVar(&cfg.NoLock, "no-lock", false, "the server has no NLM: report the lock workload as n/a")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "give up on a workload after this long")
	only := fs.String("workloads", "", "comma-separated subset of "+strings.Join(loadgen.Workloads, ","))
	jsonOut := fs.String("json", "", "append JSON lines here (default stdout)")
	fs.Parse(args)
	cfg.SeqSize, cfg.IOSize = *size<<20, *io<<10
	if *only != "" {
		cfg.Only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			cfg.Only[w] = true
		}
	}
	s, done, err := newSink(*jsonOut)
	if err != nil {
		return err
	}
	defer done()
	fmt.Fprintln(os.Stderr, benchreport.Header())
	return loadgen.Run(context.Background(), t, cfg, s.emit)
}

func cmdLimits(args []string) error {
	fs := flag.NewFlagSet("limits", flag.ExitOnError)
	dir := fs.String("dir", "", "backing directory (same filesystem as the servers')")
	size := fs.Int64("size-mib", 1024, "file size, MiB")
	io := fs.Int("io-kib", 1024, "sequential I/O size, KiB")
	workers := fs.Int("workers", 8, "threads for reads and random I/O")
	conns := fs.Int("conns", 8, "NULL: connections")
	inflight := fs.Int("inflight", 16, "NULL: calls in flight per connection")
	dur := fs.Duration("duration", 8*time.Second, "length of each timed workload")
	jsonOut := fs.String("json", "", "append JSON lines here (default stdout)")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("limits: --dir is required")
	}
	s, done, err := newSink(*jsonOut)
	if err != nil {
		return err
	}
	defer done()
	fmt.Fprintln(os.Stderr, benchreport.Header())
	emit := func(r loadgen.Result) { r.Server = "limit"; s.emit(r) }
	ctx := context.Background()
	if err := loadgen.Direct(ctx, *dir, *size<<20, *io<<10, *workers, *dur, emit); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go loadgen.ServeEcho(l)
	r, err := loadgen.NullOnly(ctx, l.Addr().String(), *conns, *inflight, *dur)
	if err != nil {
		return err
	}
	emit(r)
	return nil
}

func cmdEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	addr := fs.String("listen", "127.0.0.1:0", "address")
	fs.Parse(args)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	return loadgen.ServeEcho(l)
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "", "JSON-lines results")
	md := fs.String("md", "", "markdown file whose generated section is replaced")
	png := fs.String("png", "", "chart to write")
	machine := fs.String("machine", "", "file of `key: value` lines describing the machine and run")
	fs.Parse(args)
	rs, err := benchreport.Load(*in)
	if err != nil {
		return err
	}
	var info []byte
	if *machine != "" {
		if info, err = os.ReadFile(*machine); err != nil {
			return err
		}
	}
	if *md != "" {
		if err := benchreport.WriteMarkdown(*md, rs, string(info)); err != nil {
			return err
		}
	}
	if *png != "" {
		if err := benchreport.WriteChart(*png, rs); err != nil {
			return err
		}
	}
	return nil
}
