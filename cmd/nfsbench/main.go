// Command nfsbench is an NFSv3 load generator and the tooling of
// `make bench`:
//
//	nfsbench run     drive servers (MOUNT, then the workloads, each workload
//	                 against every server in turn) and, with --limit-dir, the
//	                 physical limits: the I/O done directly on a directory and
//	                 NULL against an in-process RPC echo server
//	nfsbench echo    serve the RPC echo server on an address
//	nfsbench sync-probe  what making a create durable costs on a filesystem,
//	                 done in the ways the optimisations of issue 12 weigh
//	nfsbench report  turn JSON-lines results into docs/benchmarks.md tables and a PNG chart
//
// Results are JSON lines on stdout (or --json FILE, appended) and a table
// on stderr. nfsbench exits non-zero if any workload failed: an NFS error
// status, a short transfer or data that differs from what was written.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/benchreport"
	"github.com/rwxnfs/rwxnfs/pkg/loadgen"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/rpcserver"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "echo":
		err = cmdEcho(os.Args[2:])
	case "sync-probe":
		err = cmdSyncProbe(os.Args[2:])
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
	fmt.Fprintln(os.Stderr, "usage: nfsbench run|echo|sync-probe|report [flags]   (nfsbench CMD -h for flags)")
	os.Exit(2)
}

// sink writes each result as a JSON line and remembers it for the table.
type sink struct {
	out  io.Writer
	rows []loadgen.Result
}

// newSink opens path (stdout for "" or "-") and prints the table's
// header.
func newSink(path string) (*sink, func(), error) {
	fmt.Fprintln(os.Stderr, benchreport.Header())
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

// targets collects repeated --target flags.
type targets []string

func (t *targets) String() string     { return strings.Join(*t, " ") }
func (t *targets) Set(v string) error { *t = append(*t, v); return nil }

// parseTarget reads "label=rwxnfs,export=/volumes/default,portmap-port=111,
// backing=/dir,no-lock,pid=N,metrics=host:port" into where the server is
// and what cfg says about it; ports left out come from the portmapper.
func parseTarget(spec string, cfg *loadgen.Config) (loadgen.Target, error) {
	t := loadgen.Target{Host: "127.0.0.1", Export: "/"}
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "label":
			cfg.Label = v
		case "host":
			t.Host = v
		case "export":
			t.Export = v
		case "backing":
			cfg.Backing = v
		case "no-lock":
			cfg.NoLock = true
		case "metrics":
			cfg.Metrics = v
		case "nfs-port":
			t.NFSPort, err = strconv.Atoi(v)
		case "mount-port":
			t.MountPort, err = strconv.Atoi(v)
		case "nlm-port":
			t.NLMPort, err = strconv.Atoi(v)
		case "portmap-port":
			t.Portmap, err = strconv.Atoi(v)
		case "pid":
			cfg.PID, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return t, fmt.Errorf("--target %q: %w", spec, err)
		}
	}
	if cfg.Label == "" {
		return t, fmt.Errorf("--target %q: no label", spec)
	}
	return t, nil
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var ts targets
	var cfg loadgen.Config
	fs.Var(&ts, "target", "a server, repeatable: label=NAME,export=PATH[,host=H][,nfs-port=P][,mount-port=P][,nlm-port=P][,portmap-port=P][,backing=DIR][,no-lock][,pid=PID for its CPU use][,metrics=HOST:PORT of rwxnfs's /metrics, for RPCs per operation]")
	limitDir := fs.String("limit-dir", "", `also measure the physical limits, directly on this directory (label "limit")`)
	limitWorkers := fs.Int("limit-workers", 8, "threads for the limits' reads and random I/O")
	fs.StringVar(&cfg.EchoAddr, "echo-addr", "", "the limits' NULLs go to the RPC echo server (nfsbench echo) at this address; default one inside nfsbench")
	fs.IntVar(&cfg.Conns, "conns", 8, "NFS connections (like nconnect=)")
	fs.IntVar(&cfg.InFlight, "inflight", 16, "RPCs in flight per connection")
	fs.DurationVar(&cfg.Duration, "duration", 8*time.Second, "length of each timed workload")
	size := fs.Int64("size-mib", 1024, "sequential file size, MiB")
	io := fs.Int("io-kib", 1024, "sequential READ/WRITE size, KiB")
	fs.IntVar(&cfg.Files, "files", 10000, "small files for create/stat/remove")
	fs.IntVar(&cfg.MetaClients, "meta-clients", 8, "connections the small files are spread over")
	fs.IntVar(&cfg.DirEntries, "dir-entries", 100000, "entries of the READDIRPLUS directory")
	fs.IntVar(&cfg.OneFiles, "one-files", 2000, "small files of the one-call-in-flight workloads")
	fs.IntVar(&cfg.OneDirEntries, "one-dir-entries", 10000, "entries of the one-call READDIRPLUS directory")
	fs.DurationVar(&cfg.OneDuration, "one-duration", 3*time.Second, "how long the one-call listings repeat")
	fs.StringVar(&cfg.Libnfs, "libnfs", "", "path of the libnfs-onecall program (bench/libnfs-onecall.c): also make the one-call workloads through libnfs")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "give up on a workload after this long")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "run each workload this many times per server, interleaved (every round is reported; the report takes medians)")
	only := fs.String("workloads", "", "comma-separated subset of "+strings.Join(loadgen.Workloads, ","))
	jsonOut := fs.String("json", "", "append JSON lines here (default stdout)")
	fs.StringVar(&cfg.Hook, "hook", "", "run `PROGRAM` start|end SERVER WORKLOAD around every measured phase, and wait for it (bench/profile.sh attaches profilers with it)")
	fs.Parse(args)
	cfg.SeqSize, cfg.IOSize = *size<<20, *io<<10
	if *only != "" {
		cfg.Only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			cfg.Only[w] = true
		}
	}
	if len(ts) == 0 && *limitDir == "" {
		return fmt.Errorf("run: give at least one --target (or --limit-dir)")
	}
	s, done, err := newSink(*jsonOut)
	if err != nil {
		return err
	}
	defer done()
	ctx := context.Background()
	var ss []loadgen.Stepper
	defer func() {
		for _, st := range ss {
			st.Close()
		}
	}()
	var openErr []string
	for _, spec := range ts {
		c := cfg
		t, err := parseTarget(spec, &c)
		if err != nil {
			return err
		}
		st, err := loadgen.Open(ctx, t, c)
		if err != nil {
			// The others still run; this one has no figures.
			openErr = append(openErr, c.Label)
			s.emit(loadgen.Result{Server: c.Label, Workload: "mount", Error: err.Error()})
			continue
		}
		ss = append(ss, st)
	}
	if *limitDir != "" {
		st, err := loadgen.OpenDirect(*limitDir, cfg, *limitWorkers)
		if err != nil {
			return err
		}
		ss = append(ss, st)
	}
	err = loadgen.Interleave(ctx, ss, cfg, s.emit)
	if len(openErr) > 0 {
		err = errors.Join(err, fmt.Errorf("could not mount: %v", openErr))
	}
	return err
}

func cmdEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	addr := fs.String("listen", "127.0.0.1:0", "address")
	transport := fs.String("transport", "plain", "plain: a loop per connection that answers at once; rpcserver: nfsd's own transport (pkg/rpcserver) answering NFS NULL; rpcserver-workers: the same with every call handed to a worker")
	fs.Parse(args)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	switch *transport {
	case "plain":
		return loadgen.ServeEcho(l)
	case "rpcserver", "rpcserver-workers":
		return serveRPCNull(l, *transport == "rpcserver")
	}
	return fmt.Errorf("echo: unknown --transport %q", *transport)
}

// nullProgram answers every NFS call with an empty success, and says
// whether its calls are brief as asked: the floor of nfsd's transport,
// without the file system.
type nullProgram struct{ brief bool }

func (nullProgram) ServeRPC(context.Context, *rpc.Request, *xdr.Writer) error { return nil }
func (p nullProgram) Brief(_, _, _ uint32) bool                               { return p.brief }

func serveRPCNull(l net.Listener, brief bool) error {
	var m rpc.Mux
	m.Handle(rpc.Program{Prog: wire.Program, Low: wire.Version, High: wire.Version, Name: "nfs", Handler: nullProgram{brief}})
	return (&rpcserver.Server{Handler: &m}).Serve(l)
}

func cmdSyncProbe(args []string) error {
	fs := flag.NewFlagSet("sync-probe", flag.ExitOnError)
	dir := fs.String("dir", "", "a directory on the filesystem to probe")
	ops := fs.Int("ops", 2000, "creates per case")
	conc := fs.Int("conc", 16, "creates at once in the concurrent cases")
	rounds := fs.Int("rounds", 1, "run every case this many times, round after round")
	jsonOut := fs.String("json", "", "append JSON lines here (default stdout)")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("sync-probe: give --dir")
	}
	s, done, err := newSink(*jsonOut)
	if err != nil {
		return err
	}
	defer done()
	for round := 1; round <= *rounds; round++ {
		rs, err := loadgen.SyncProbe(context.Background(), *dir, *ops, *conc)
		for _, r := range rs {
			r.Round, r.Rounds = round, *rounds
			s.emit(r)
		}
		if err != nil {
			return err
		}
	}
	return nil
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
