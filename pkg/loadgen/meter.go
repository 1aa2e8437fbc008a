package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// meter reads what a server says about itself around a workload: the CPU
// its process used (when it runs here) and, when it serves Prometheus
// metrics as rwxnfs does, how many calls of each procedure it answered.
// The call counts show what a client's operation costs in RPCs: libnfs's
// stat of a path, for one, is a LOOKUP per component and a GETATTR.
type meter struct {
	pid     int
	metrics string // host:port of /metrics, or ""
}

type reading struct {
	cpu   float64
	cpuOK bool
	self  float64            // this process's CPU seconds
	calls map[string]float64 // by "procedure" (NFS) or "program.procedure"
}

func (m meter) read() reading {
	var r reading
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		r.self = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	if m.pid != 0 {
		c, err := processCPU(m.pid)
		r.cpu, r.cpuOK = c, err == nil
	}
	if m.metrics != "" {
		r.calls = scrapeCalls(m.metrics)
	}
	return r
}

// since charges what happened after r0 to res.
func (m meter) since(r0 reading, res *Result) { m.charge(r0, m.read(), res) }

// charge charges what happened between r0 and r1 to res: the CPU in all,
// the calls per operation.
func (m meter) charge(r0, r1 reading, res *Result) {
	if r0.cpuOK && r1.cpuOK {
		res.ServerCPU = r1.cpu - r0.cpu
	}
	if res.Client == "" {
		res.ClientCPU = r1.self - r0.self
	}
	if r0.calls == nil || r1.calls == nil || res.Ops == 0 {
		return
	}
	for k, v := range r1.calls {
		// Below one call in 200 operations is set-up (MOUNT, FSINFO), not
		// part of the operation.
		if per := (v - r0.calls[k]) / float64(res.Ops); per >= 0.005 {
			if res.RPCs == nil {
				res.RPCs = map[string]float64{}
			}
			res.RPCs[k] = per
		}
	}
}

// perListing turns a listing workload's calls per entry into calls per
// listing of entries.
func perListing(res *Result, entries int) {
	for k, v := range res.RPCs {
		res.RPCs[k] = v * float64(entries)
	}
}

// scrapeCalls reads rwxnfs_rpc_calls_total from a /metrics page; nil if
// it cannot.
func scrapeCalls(addr string) map[string]float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	const metric = "rwxnfs_rpc_calls_total{"
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		labels, val, ok := strings.Cut(line[len(metric):], "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		proc, prog := label(labels, "procedure"), label(labels, "program")
		key := proc
		if prog != "nfs" {
			key = prog + "." + proc
		}
		out[key] = v
	}
	if sc.Err() != nil || len(out) == 0 {
		return nil
	}
	return out
}

// label returns the value of name="value" in a Prometheus label list.
func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// begin is where a measured phase starts: the hook (Config.Hook), if any,
// runs first, then the meters are read, so the hook's own work is not
// charged to the phase.
func (b *bench) begin(workload, mode, client string) reading {
	b.hook("start", Result{Workload: workload, Mode: mode, Client: client})
	return b.meter().read()
}

// end charges the server's CPU and calls since r0 to res, then runs the
// hook.
func (b *bench) end(r0 reading, res *Result) {
	b.meter().charge(r0, b.meter().read(), res)
	b.hook("end", *res)
}

// hook runs Config.Hook as `HOOK start|end SERVER NAME`, NAME being the
// workload, prefixed "one-" or "libnfs-" for the one-call workloads: a
// profiler attaches to the server for exactly the measured calls. It
// waits for the hook; a failing hook is reported, not fatal.
func (b *bench) hook(event string, r Result) {
	if b.cfg.Hook == "" {
		return
	}
	name := r.Workload
	switch {
	case r.Client != "":
		name = r.Client + "-" + name
	case r.Mode != "":
		name = r.Mode + "-" + name
	}
	cmd := exec.Command(b.cfg.Hook, event, b.cfg.Label, name)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "nfsbench: hook %s %s %s: %v\n", event, b.cfg.Label, name, err)
	}
}
