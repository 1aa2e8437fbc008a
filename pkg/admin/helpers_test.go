package admin

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

const testToken = "s3cret-token-for-tests-0123456789"

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startAdmin serves a real table over a real gRPC listener on a unix
// socket.
func startAdmin(t *testing.T) (*Server, *exports.Table, *syncBuf, string) {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	tb, err := exports.Open(exports.Config{Root: filepath.Join(dir, "root"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	sock := "unix:" + filepath.Join(dir, "admin.sock")
	s, err := Start(Config{Listen: sock, TokenFile: tokenFile, Info: Info{Version: "test-version", NFSAddr: "127.0.0.1:2049"}}, tb, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
		tb.Close()
	})
	return s, tb, logs, sock
}

func client(t *testing.T, addr, token string) adminv1.AdminClient {
	t.Helper()
	cl, conn, err := Dial(ClientConfig{Addr: addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cl
}

func wantCode(t *testing.T, err error, c codes.Code) {
	t.Helper()
	if status.Code(err) != c {
		t.Fatalf("got %v, want %v", err, c)
	}
}

// waitReady polls a snapshot until its copy is done.
func waitReady(t *testing.T, cl adminv1.AdminClient, id string) *adminv1.Snapshot {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		g, err := cl.GetSnapshot(context.Background(), &adminv1.GetSnapshotRequest{SnapshotId: id})
		if err != nil {
			t.Fatal(err)
		}
		if g.Snapshot.Error != "" {
			t.Fatalf("snapshot %s failed: %s", id, g.Snapshot.Error)
		}
		if g.Snapshot.ReadyToUse {
			return g.Snapshot
		}
	}
	t.Fatalf("snapshot %s not ready in 30s", id)
	return nil
}
