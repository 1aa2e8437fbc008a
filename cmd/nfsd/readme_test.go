package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/readme"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// TestREADME runs the README's commands as an operator would: its first
// command line (serve, then mount the default volume) and every line of
// its "The first hour" section, in that order, each in a fresh directory,
// in private network and mount namespaces (so the fixed ports 2049 and
// 111, /run/rwxnfs and /mnt are the test's own).
//
// This machine has no NFS client, so a few client lines run as their
// equivalent (make e2e runs the mount line in a VM with a kernel client,
// e2e TestREADMEMount):
//
//	go install ./cmd/nfsd       the test built ./cmd/nfsd into its PATH
//	go run ./cmd/nfsd ARGS      that binary with ARGS
//	mount -t nfs -o vers=3 H:/E D   nfs-ls nfs://H/E?version=3 (libnfs: MOUNT, then NFS)
//	cp FILE D/                  nfs-cp FILE nfs://H/E/FILE's name
//	df -h D                     FSSTAT with our client, printed as df would
//	umount D                    nothing
//	kill %1                     SIGTERM to the command started with &; it must exit 0
//
// "make test" (the README's second line) is this suite itself.
func TestREADME(t *testing.T) {
	dir := os.Getenv("RWXNFS_README_DIR")
	if dir == "" {
		for _, tool := range []string{"unshare", "nfs-ls", "nfs-cp", "curl", "ip"} {
			if _, err := exec.LookPath(tool); err != nil {
				if os.Getenv("RWXNFS_STRICT") != "" {
					t.Fatalf("%s not installed (make deps installs it)", tool)
				}
				t.Skipf("%s not installed", tool)
			}
		}
		dir = t.TempDir()
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if out, err := exec.Command(goTool, "build", "-o", filepath.Join(dir, "bin", "nfsd"), ".").CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/nfsd: %v\n%s", err, out)
		}
		cmd := exec.Command("unshare", "--net", "--mount", "--fork", "--", os.Args[0], "-test.run", "^TestREADME$", "-test.v")
		cmd.Env = append(os.Environ(), "RWXNFS_README_DIR="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestREADME")) {
			t.Fatalf("the README's commands, in namespaces: %v\n%s", err, out)
		}
		t.Logf("in namespaces:\n%s", out)
		return
	}
	// In the namespaces: loopback up, our own /run and /mnt.
	for _, c := range [][]string{{"ip", "link", "set", "lo", "up"}, {"mount", "-t", "tmpfs", "tmpfs", "/run"}, {"mount", "-t", "tmpfs", "tmpfs", "/mnt"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	cmds, err := readme.Read()
	if err != nil {
		t.Fatal(err)
	}
	quick, hour := cmds.Quick, cmds.FirstHour
	if !strings.HasPrefix(quick[1], "make test") {
		t.Fatalf("the README's first lines of commands: %q", quick)
	}

	t.Run("first line", func(t *testing.T) {
		s := newSession(t, dir, "quick")
		s.run(quick[0] + " &")
		// "a Linux client mounts it with mount -t nfs -o vers=3 127.0.0.1:/volumes/default /mnt"
		s.run("mount -t nfs -o vers=3 127.0.0.1:/volumes/default /mnt")
		s.run("kill %1")
	})
	t.Run("first hour", func(t *testing.T) {
		s := newSession(t, dir, "hour")
		for _, line := range hour {
			s.run(line)
		}
		for _, c := range []struct{ cmd, want string }{
			{"nfsd version", "commit: "},
			{"nfsd admin info", "NFS address:"},
			{"nfsd admin create web 1Gi", "Capacity:     1Gi (1073741824 bytes)"},
			{"df -h /mnt/web", "1.0G"},
			{"nfsd admin list", "web"},
			{"curl -s", "rwxnfs_build_info{"},
		} {
			if out := s.output(c.cmd); !strings.Contains(out, c.want) {
				t.Errorf("%q: output lacks %q:\n%s", c.cmd, c.want, out)
			}
		}
		var v struct{ UsedBytes, CapacityBytes int64 }
		if err := json.Unmarshal([]byte(s.output("nfsd admin show web -o json")), &v); err != nil || v.CapacityBytes != 1<<30 || v.UsedBytes == 0 {
			t.Errorf("show web -o json after cp: %v %+v", err, v)
		}
		if !strings.Contains(s.bgLog.String(), "state/admin-token") {
			t.Errorf("the token's path is not in the log:\n%s", s.bgLog.String())
		}
	})
}

// session runs README lines in one directory, as a shell would, with the
// translations TestREADME lists.
type session struct {
	t       *testing.T
	dir     string
	env     []string
	mounts  map[string]string // mount point -> nfs:// URL of the export
	outputs []string          // "cmd\x00output"
	bg      *exec.Cmd
	bgDone  chan error
	bgLog   *lockedBuffer
}

func newSession(t *testing.T, dir, name string) *session {
	wd := filepath.Join(dir, name)
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &session{t: t, dir: wd, mounts: map[string]string{}, bgLog: &lockedBuffer{},
		env: append(os.Environ(), "PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))}
	t.Cleanup(func() {
		if s.bg != nil && s.bg.ProcessState == nil {
			s.bg.Process.Kill()
			<-s.bgDone
		}
	})
	return s
}

var mountLine = regexp.MustCompile(`^mount -t nfs -o vers=3 ([^: ]+):(/\S+) (\S+)$`)

func (s *session) run(line string) {
	t := s.t
	t.Helper()
	line = strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(line, "go run ./cmd/nfsd "); ok {
		line = "nfsd " + rest
	}
	out, err := "", error(nil)
	f := strings.Fields(line)
	switch {
	case line == "go install ./cmd/nfsd":
		// Built by TestREADME into PATH.
	case strings.HasSuffix(line, "&"):
		s.start(strings.TrimSpace(strings.TrimSuffix(line, "&")))
	case line == "kill %1":
		s.bg.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-s.bgDone:
		case <-time.After(60 * time.Second):
			err = fmt.Errorf("nfsd did not exit after SIGTERM")
		}
	case mountLine.MatchString(line):
		m := mountLine.FindStringSubmatch(line)
		url := "nfs://" + m[1] + m[2]
		s.mounts[strings.TrimSuffix(m[3], "/")] = url
		out, err = s.sh("nfs-ls " + shellQuote(url+"?version=3"))
	case f[0] == "cp" && len(f) == 3 && s.mounts[strings.TrimSuffix(f[2], "/")] != "":
		out, err = s.sh("nfs-cp " + shellQuote(f[1]) + " " + shellQuote(s.mounts[strings.TrimSuffix(f[2], "/")]+"/"+path.Base(f[1])+"?version=3"))
	case f[0] == "df" && s.mounts[strings.TrimSuffix(f[len(f)-1], "/")] != "":
		out, err = s.df(f[len(f)-1])
	case f[0] == "umount":
		delete(s.mounts, strings.TrimSuffix(f[1], "/"))
	default:
		out, err = s.sh(line)
	}
	s.outputs = append(s.outputs, line+"\x00"+out)
	if err != nil {
		t.Fatalf("README command %q: %v\n%s\nnfsd's log:\n%s", line, err, out, s.bgLog.String())
	}
}

// output is the output of the first command run that starts with prefix.
func (s *session) output(prefix string) string {
	for _, o := range s.outputs {
		if cmd, out, _ := strings.Cut(o, "\x00"); strings.HasPrefix(cmd, prefix) {
			return out
		}
	}
	s.t.Errorf("no command %q was run", prefix)
	return ""
}

func (s *session) sh(line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir, cmd.Env = s.dir, s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start runs a line in the background and waits for nfsd's "nfsd
// serving" log line, as the README says to.
func (s *session) start(line string) {
	t := s.t
	cmd := exec.Command("sh", "-c", "exec "+line)
	cmd.Dir, cmd.Env = s.dir, s.env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.bg, s.bgDone = cmd, make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			s.bgLog.Write(append(sc.Bytes(), '\n'))
			if strings.Contains(sc.Text(), `msg="nfsd serving"`) {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() { err := cmd.Wait(); pw.Close(); s.bgDone <- err }()
	select {
	case <-ready:
	case err := <-s.bgDone:
		t.Fatalf("%q exited: %v\n%s", line, err, s.bgLog.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%q did not log \"nfsd serving\"\n%s", line, s.bgLog.String())
	}
}

// df prints what df -h shows for an NFS mount: FSSTAT's figures.
func (s *session) df(dir string) (string, error) {
	url := s.mounts[strings.TrimSuffix(dir, "/")]
	hostExport := strings.TrimPrefix(url, "nfs://")
	host, export, _ := strings.Cut(hostExport, "/")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := nfsclient.Dial(ctx, host+":2049")
	if err != nil {
		return "", err
	}
	defer c.Close()
	fh, err := c.Mount(ctx, "/"+export)
	if err != nil {
		return "", err
	}
	st, err := c.FSStat(ctx, fh)
	if err != nil {
		return "", err
	}
	g := func(n uint64) string { return fmt.Sprintf("%.1fG", float64(n)/(1<<30)) }
	return fmt.Sprintf("Filesystem Size Used Avail Mounted on\n%s:/%s %s %s %s %s\n", host, export,
		g(st.TotalBytes), g(st.TotalBytes-st.FreeBytes), g(st.AvailBytes), dir), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
