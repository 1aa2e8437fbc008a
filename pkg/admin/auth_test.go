package admin

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

func TestAdminAuth(t *testing.T) {
	_, _, logs, sock := startAdmin(t)
	ctx := context.Background()
	_, err := client(t, sock, "").ListVolumes(ctx, &adminv1.ListVolumesRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = client(t, sock, "wrong-token-wrong-token").CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "x"})
	wantCode(t, err, codes.Unauthenticated)
	if !strings.Contains(logs.String(), "admin call refused") || !strings.Contains(logs.String(), "reason=\"wrong token\"") {
		t.Fatalf("refusals not logged:\n%s", logs)
	}
	if _, err := client(t, sock, testToken).ListVolumes(ctx, &adminv1.ListVolumesRequest{}); err != nil {
		t.Fatal(err)
	}
	// Without a token file, or with a short or missing one, the API
	// does not start.
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("  too-short  \n"), 0o600)
	for _, f := range []string{"", short, filepath.Join(dir, "missing")} {
		if _, err := Start(Config{Listen: "127.0.0.1:0", TokenFile: f}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Fatalf("started with token file %q", f)
		}
	}
}

// A unix socket left by an earlier run is replaced, and the new one is
// for root only.
func TestAdminUnixSocket(t *testing.T) {
	s, tb, _, sock := startAdmin(t)
	path := strings.TrimPrefix(sock, "unix:")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi.Mode(), err)
	}
	s.Stop(context.Background()) // like a kill -9, the file may stay; make sure it does
	if _, err := os.Lstat(path); err != nil {
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte(testToken), 0o600)
	s2, err := Start(Config{Listen: sock, TokenFile: token}, tb, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("restart over a stale socket: %v", err)
	}
	defer s2.Stop(context.Background())
	if _, err := client(t, sock, testToken).GetServerInfo(context.Background(), &adminv1.GetServerInfoRequest{}); err != nil {
		t.Fatalf("over the replaced socket: %v", err)
	}
}
