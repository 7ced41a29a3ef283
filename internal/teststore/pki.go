package teststore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority with one server certificate,
// valid for 127.0.0.1 and localhost, and one client certificate, written as
// PEM files in a test directory. Two PKIs never trust each other's
// certificates, which is how tests present a wrong CA.
type PKI struct {
	// CAFile is the CA certificate.
	CAFile string
	// ServerCert and ServerKey are the server's certificate (server
	// authentication) and private key.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate (client
	// authentication) and its private key.
	ClientCert, ClientKey string
}

// NewPKI generates a CA whose common name starts with name, and the server
// and client certificates it signs, valid from an hour ago for a day. The
// files live in a temporary directory removed when the test ends. It fails
// the test if a key cannot be generated or a file cannot be written.
func NewPKI(t testing.TB, name string) PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("teststore: CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("teststore: CA certificate: %v", err)
	}
	p := PKI{CAFile: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, file string) (string, string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("teststore: %s certificate: %v", file, err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatalf("teststore: %s key: %v", file, err)
		}
		return writePEM(t, dir, file+".pem", "CERTIFICATE", der), writePEM(t, dir, file+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	p.ServerCert, p.ServerKey = issue(2, name+" test server", x509.ExtKeyUsageServerAuth, "server")
	p.ClientCert, p.ClientKey = issue(3, name+" test client", x509.ExtKeyUsageClientAuth, "client")
	return p
}

// TLS names p's files for a start function: the server presents
// ServerCert, and with clientCertAuth it refuses clients without a
// certificate of p; the readiness check presents ClientCert either way.
func (p PKI) TLS(clientCertAuth bool) *TLS {
	return &TLS{
		CAFile: p.CAFile, CertFile: p.ServerCert, KeyFile: p.ServerKey,
		ClientCertAuth: clientCertAuth, ClientCertFile: p.ClientCert, ClientKeyFile: p.ClientKey,
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("teststore: key: %v", err)
	}
	return key
}

func writePEM(t testing.TB, dir, file, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatalf("teststore: %v", err)
	}
	return path
}
