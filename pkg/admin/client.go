package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

// ClientConfig says how to reach the admin API.
type ClientConfig struct {
	Addr  string // "unix:/path.sock" or "host:port"
	Token string // bearer token ("" for none: every call is refused)
	// TokenFile, if set instead of Token, is read when it changes, so a
	// rotated token (say, an updated Kubernetes Secret) takes effect
	// without a restart.
	TokenFile string
	CACert    string // server CA (PEM): use TLS
	Cert, Key string // client certificate for mTLS
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}
func (b bearer) RequireTransportSecurity() bool { return b.secure }

// fileBearer sends the token held in a file, re-read when the file's
// modification time or size changes.
type fileBearer struct {
	path   string
	secure bool

	mu    sync.Mutex
	stamp [2]int64 // mtime (ns), size
	tok   string
}

func (f *fileBearer) token() (string, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	stamp := [2]int64{fi.ModTime().UnixNano(), fi.Size()}
	if stamp != f.stamp || f.tok == "" {
		raw, err := os.ReadFile(f.path)
		if err != nil {
			return "", fmt.Errorf("admin token file: %w", err)
		}
		tok := strings.TrimSpace(string(raw))
		if tok == "" {
			return "", fmt.Errorf("admin token file %s is empty", f.path)
		}
		f.tok, f.stamp = tok, stamp
	}
	return f.tok, nil
}

func (f *fileBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := f.token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}
func (f *fileBearer) RequireTransportSecurity() bool { return f.secure }

// Dial connects an admin client.
func Dial(cfg ClientConfig) (adminv1.AdminClient, *grpc.ClientConn, error) {
	var opts []grpc.DialOption
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, errors.New("no certificate in " + cfg.CACert)
		}
		tc := &tls.Config{RootCAs: pool, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
		if cfg.Cert != "" {
			c, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
			if err != nil {
				return nil, nil, err
			}
			tc.Certificates = []tls.Certificate{c}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	switch {
	case cfg.TokenFile != "":
		fb := &fileBearer{path: cfg.TokenFile, secure: cfg.CACert != ""}
		if _, err := fb.token(); err != nil {
			return nil, nil, err
		}
		opts = append(opts, grpc.WithPerRPCCredentials(fb))
	case cfg.Token != "":
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: cfg.Token, secure: cfg.CACert != ""}))
	}
	target := cfg.Addr
	if p, ok := strings.CutPrefix(target, "unix:"); ok {
		target = "unix://" + p
	} else {
		target = "passthrough:///" + target
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("admin API %s: %w", cfg.Addr, err)
	}
	return adminv1.NewAdminClient(conn), conn, nil
}
