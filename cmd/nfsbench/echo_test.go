package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
)

// Both transports of `nfsbench echo --transport rpcserver[-workers]`
// answer NFS NULL over a real socket, as the floor measurements use them.
func TestRPCNullEcho(t *testing.T) {
	for _, brief := range []bool{true, false} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go serveRPCNull(l, brief)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := nfsclient.Dial(ctx, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := c.Null(ctx); err != nil {
				t.Fatalf("brief %v: NULL: %v", brief, err)
			}
		}
		c.Close()
		cancel()
		l.Close()
	}
}
