package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

// ClientConfig says how to reach the admin API.
type ClientConfig struct {
	Addr      string // "unix:/path.sock" or "host:port"
	Token     string // bearer token ("" for none: every call is refused)
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
	if cfg.Token != "" {
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
