package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// writeCert makes a certificate signed by parent (self-signed if nil)
// and writes it and its key as PEM files named base.crt and base.key.
func writeCert(t *testing.T, dir, base string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, base+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, base+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

func TestAdminMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nfsd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "csi-controller"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	p := func(s string) string { return filepath.Join(dir, s) }
	os.WriteFile(p("token"), []byte(testToken), 0o600)
	tb, err := exports.Open(exports.Config{Root: p("root"), Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	s, err := Start(Config{Listen: "127.0.0.1:0", TokenFile: p("token"), TLSCert: p("server.crt"), TLSKey: p("server.key"), ClientCA: p("ca.crt")}, tb, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	addr := s.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	good := client2(t, ClientConfig{Addr: addr, Token: testToken, CACert: p("ca.crt"), Cert: p("client.crt"), Key: p("client.key")})
	if _, err := good.ListVolumes(ctx, &adminv1.ListVolumesRequest{}); err != nil {
		t.Fatalf("mTLS with token: %v", err)
	}
	noToken := client2(t, ClientConfig{Addr: addr, CACert: p("ca.crt"), Cert: p("client.crt"), Key: p("client.key")})
	_, err = noToken.ListVolumes(ctx, &adminv1.ListVolumesRequest{})
	wantCode(t, err, codes.Unauthenticated)
	noCert := client2(t, ClientConfig{Addr: addr, Token: testToken, CACert: p("ca.crt")})
	if _, err := noCert.ListVolumes(ctx, &adminv1.ListVolumesRequest{}); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	plain := client2(t, ClientConfig{Addr: addr, Token: testToken})
	if _, err := plain.ListVolumes(ctx, &adminv1.ListVolumesRequest{}); err == nil {
		t.Fatal("a plaintext client got in")
	}
}

func client2(t *testing.T, cfg ClientConfig) adminv1.AdminClient {
	t.Helper()
	cl, conn, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cl
}

// A token file is re-read when it changes: a rotated token works without
// a new connection.
func TestClientTokenFileRotates(t *testing.T) {
	_, _, _, sock := startAdmin(t)
	f := filepath.Join(t.TempDir(), "token")
	os.WriteFile(f, []byte("wrong-token-wrong-token\n"), 0o400)
	cl, conn, err := Dial(ClientConfig{Addr: sock, TokenFile: f})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	_, err = cl.ListVolumes(ctx, &adminv1.ListVolumesRequest{})
	wantCode(t, err, codes.Unauthenticated)
	os.Remove(f)
	os.WriteFile(f, []byte(testToken+"\n"), 0o400)
	if _, err := cl.ListVolumes(ctx, &adminv1.ListVolumesRequest{}); err != nil {
		t.Fatalf("after rotating the token file: %v", err)
	}
	if _, _, err := Dial(ClientConfig{Addr: sock, TokenFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("dialled with a missing token file")
	}
}
