package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// libnfs runs the one-call metadata workloads through libnfs's synchronous
// API, a client we did not write: the program Config.Libnfs
// (bench/libnfs-onecall.c), one process per phase, over OneFiles files in
// a fresh directory, then listings of the one-call READDIRPLUS directory.
// libnfs calls take paths, so each walks the path from the mount root
// (the RPCs per operation that rwxnfs counts show what that costs).
func (b *bench) libnfs(ctx context.Context) ([]Result, error) {
	if b.cfg.Libnfs == "" {
		return nil, nil
	}
	if err := b.oneListing(ctx); err != nil {
		return nil, err
	}
	dirName := b.uniq("libnfs")
	if _, _, err := b.cs[0].Mkdir(ctx, b.dir, dirName, nfsclient.SetAttr{Mode: nfsclient.U32(0o755)}); err != nil {
		return nil, err
	}
	var out []Result
	var softErrs []error
	for _, ph := range append(append([]string{}, MetaPhases...), "readdir") {
		path, n := "/"+b.name+"/"+dirName, b.cfg.OneFiles
		if ph == "readdir" {
			path, n = "/"+b.name+"/"+b.oneList, b.cfg.OneDirEntries
		}
		r, err := b.runLibnfs(ctx, ph, path, n)
		if err != nil {
			err = fmt.Errorf("libnfs %s: %w", ph, err)
			if ph == "stat" || ph == "getattr" || ph == "setattr" {
				// As in metaPass: the files are as they were; go on.
				out = append(out, Result{Workload: ph, Mode: ModeOne, Client: ClientLibnfs, Error: err.Error()})
				softErrs = append(softErrs, err)
				continue
			}
			return out, errors.Join(append(softErrs, err)...)
		}
		if ph == "readdir" {
			perListing(&r, n)
		}
		out = append(out, r)
	}
	// Every phase left the directory as it found it (the program checks).
	return out, errors.Join(append(softErrs, b.cs[0].Rmdir(ctx, b.dir, dirName))...)
}

// libnfsURL is the export in libnfs's URL syntax, with the ports given so
// that no portmapper is needed, no directory cache (each listing must
// reach the server) and root's credentials, as nfsbench's own calls.
func (b *bench) libnfsURL() string {
	return fmt.Sprintf("nfs://%s%s?nfsport=%d&mountport=%d&auto-traverse-mounts=0&dircache=0&uid=0&gid=0",
		b.t.Host, b.t.Export, b.t.NFSPort, b.t.MountPort)
}

// runLibnfs runs one phase of the program and reads the server's meters
// when it says the measured calls start and end.
func (b *bench) runLibnfs(ctx context.Context, phase, dir string, n int) (Result, error) {
	cmd := exec.CommandContext(ctx, b.cfg.Libnfs, b.libnfsURL(), phase, dir, strconv.Itoa(n), strconv.FormatInt(b.cfg.oneDuration().Milliseconds(), 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return Result{}, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	r, perr := b.followLibnfs(phase, outp, in)
	in.Close()
	io.Copy(io.Discard, outp)
	if err := cmd.Wait(); err != nil {
		return Result{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if perr != nil {
		return Result{}, perr
	}
	r.Workload, r.Mode, r.Client, r.Conns, r.InFlight = phase, ModeOne, ClientLibnfs, 1, 1
	if r.Ops <= 0 || r.Seconds <= 0 {
		return Result{}, fmt.Errorf("no operations measured")
	}
	r.OpsPerS = float64(r.Ops) / r.Seconds
	return r, nil
}

// followLibnfs answers the program's start and end marks, then decodes
// its result line.
func (b *bench) followLibnfs(phase string, out io.Reader, in io.Writer) (Result, error) {
	var r Result
	var r0, r1 reading
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "start":
			r0 = b.begin(phase, ModeOne, ClientLibnfs)
		case line == "end":
			r1 = b.meter().read()
			b.hook("end", Result{Workload: phase, Mode: ModeOne, Client: ClientLibnfs})
		case strings.HasPrefix(line, "{"):
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return r, fmt.Errorf("result %q: %w", line, err)
			}
			b.meter().charge(r0, r1, &r)
			return r, nil
		default:
			return r, fmt.Errorf("unexpected output %q", line)
		}
		if _, err := io.WriteString(in, "go\n"); err != nil {
			return r, err
		}
	}
	return r, fmt.Errorf("no result line")
}
