package redis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/electionkit/election"
	"github.com/electionkit/election/internal/teststore"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its
// key into dir and returns their paths.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestRedissURL opens a rediss:// URL (TLS, parsed by go-redis) against a
// redis-server that speaks only TLS.
func TestRedissURL(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t, t.TempDir())
	addr := teststore.StartRedis(t, teststore.RedisOptions{TLS: &teststore.TLS{
		CAFile: certFile, CertFile: certFile, KeyFile: keyFile, // self-signed: its own CA
	}}).Addr
	ctx := testContext(t, 30*time.Second)

	// The self-signed certificate is not in the system pool: verification
	// fails, a configuration problem retrying cannot fix.
	if _, err := OpenURL(ctx, mustParse(t, "rediss://"+addr+"/?dial_timeout=2s")); !errors.Is(err, election.ErrInvalidArgument) {
		t.Errorf("OpenURL with an untrusted certificate = %v, want ErrInvalidArgument", err)
	}
	b, err := OpenURL(ctx, mustParse(t, "rediss://"+addr+"/?skip_verify=true&quarantine=10ms"))
	if err != nil {
		t.Fatalf("OpenURL(rediss://…?skip_verify=true): %v", err)
	}
	defer b.Close()
	s, err := b.OpenSession(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx, "tls")
	if err != nil {
		t.Fatalf("Watch over TLS: %v", err)
	}
	next(t, ch)
	held := claim(t, ctx, s, request("tls", "a"))
	if ev := next(t, ch); ev.Leader == nil || ev.Leader.Fence != held.Fence {
		t.Errorf("watch event over TLS = %+v", ev)
	}
}
