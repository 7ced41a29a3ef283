package teststore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TLS names the PEM files that make a server speak TLS to its clients. The
// files are the caller's (usually a test PKI generator's); the start
// functions pass their paths to the server and read them only for their own
// readiness check, which trusts CAFile and presents the client certificate
// when one is named.
type TLS struct {
	// CAFile is the CA certificate that signed CertFile and, with
	// ClientCertAuth, the client certificates the server accepts. Required.
	CAFile string
	// CertFile and KeyFile are the server's certificate, valid for
	// 127.0.0.1, and its private key. Required.
	CertFile, KeyFile string
	// ClientCertAuth makes the server refuse clients without a certificate
	// signed by CAFile.
	ClientCertAuth bool
	// ClientCertFile and ClientKeyFile are a client certificate signed by
	// CAFile and its key. Required with ClientCertAuth, where the readiness
	// check presents them; optional otherwise.
	ClientCertFile, ClientKeyFile string
}

// validate reports every missing file name at once.
func (c *TLS) validate() error {
	var errs []error
	if c.CAFile == "" {
		errs = append(errs, errors.New("TLS.CAFile is empty"))
	}
	if c.CertFile == "" || c.KeyFile == "" {
		errs = append(errs, errors.New("TLS.CertFile and TLS.KeyFile are required"))
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		errs = append(errs, errors.New("TLS.ClientCertFile and TLS.ClientKeyFile go together"))
	}
	if c.ClientCertAuth && c.ClientCertFile == "" {
		errs = append(errs, errors.New("TLS.ClientCertAuth needs TLS.ClientCertFile and TLS.ClientKeyFile"))
	}
	return errors.Join(errs...)
}

// ClientConfig returns a client configuration that trusts only CAFile and,
// when ClientCertFile is set, presents that certificate. It fails if a file
// cannot be read or holds no usable certificate or key.
func (c *TLS) ClientConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(filepath.Clean(c.CAFile))
	if err != nil {
		return nil, fmt.Errorf("teststore: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("teststore: no certificate in %s", c.CAFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("teststore: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// checkTLS returns the client configuration of a readiness check of a
// server configured with c: nil for a plain-text server. It fails the test,
// naming the options, if c is incomplete or its files are unusable.
func checkTLS(t testing.TB, options string, c *TLS) *tls.Config {
	t.Helper()
	if c == nil {
		return nil
	}
	if err := c.validate(); err != nil {
		t.Fatalf("teststore: %s: %v", options, err)
	}
	cfg, err := c.ClientConfig()
	if err != nil {
		t.Fatalf("teststore: %s: %v", options, err)
	}
	return cfg
}
