package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// Connections held open and silent (no token is checked before a
// connection is accepted) cannot take more than MaxConns descriptors:
// one more is closed at once; once one goes, a real client is served.
func TestAdminConnectionCap(t *testing.T) {
	dir := t.TempDir()
	tb, err := exports.Open(exports.Config{Root: filepath.Join(dir, "root"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	s, err := Start(Config{Listen: "127.0.0.1:0", TokenFile: tokenFile}, tb, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the connections below are closed
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	addr := s.Addr().String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closed := func(c net.Conn) bool { // accepted and closed, not left waiting
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
	}
	var held []net.Conn
	for range DefaultMaxConns {
		held = append(held, dial())
	}
	// Accepted in order: by the time the next is, all the held ones are.
	if !closed(dial()) {
		t.Fatalf("connection %d was not refused", DefaultMaxConns+1)
	}
	held[0].Close()
	cl := client(t, addr, testToken)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cl.GetServerInfo(ctx, &adminv1.GetServerInfoRequest{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a real client is not served once a connection is free: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !closed(dial()) {
		t.Fatal("the cap was not kept with the client connected")
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
