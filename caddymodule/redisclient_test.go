package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestStoreConfigResolvesPlaceholders(t *testing.T) {
	t.Setenv("PSPGUARD_TEST_NODE", "10.0.0.9:6379")
	t.Setenv("PSPGUARD_TEST_PASSWORD", "s3cret")
	c := &StoreConfig{Type: "redis", Topology: "cluster", Addrs: []string{"{env.PSPGUARD_TEST_NODE}", "10.0.0.2:6379"},
		Password: "{env.PSPGUARD_TEST_PASSWORD}", Username: "{env.PSPGUARD_TEST_UNSET}"}
	r := c.resolved()
	if r.Addrs[0] != "10.0.0.9:6379" || r.Addrs[1] != "10.0.0.2:6379" || r.Password != "s3cret" || r.Username != "" {
		t.Errorf("resolved %+v", r)
	}
	if c.Password != "{env.PSPGUARD_TEST_PASSWORD}" || c.Addrs[0] != "{env.PSPGUARD_TEST_NODE}" {
		t.Errorf("the config itself changed: %+v", c)
	}
}

func TestRedisClientKey(t *testing.T) {
	base := StoreConfig{Type: "redis", URL: "redis://127.0.0.1:6379/0", Timeout: caddy.Duration(time.Second)}
	key := func(c StoreConfig) string {
		t.Helper()
		rc, err := newRedisClient(c)
		if err != nil {
			t.Fatal(err)
		}
		return rc.key
	}
	withURL := base
	withURL.URL = "redis://:hunter2-in-url@127.0.0.1:6379/0"
	withPassword := base
	withPassword.Password = "hunter2-in-block"
	other := withPassword
	other.Password = "another"
	sentinel := StoreConfig{Type: "redis", Topology: "sentinel", MasterName: "m", Addrs: []string{"127.0.0.1:26379"},
		Password: "hunter2-in-block", SentinelPassword: "hunter2-sentinel"}
	cluster := StoreConfig{Type: "redis", Topology: "cluster", Addrs: []string{"127.0.0.1:7000"}, Password: "hunter2-in-block", Prefix: "p"}
	keys := map[string]bool{}
	for _, c := range []StoreConfig{base, withURL, withPassword, other, sentinel, cluster} {
		k := key(c)
		if strings.Contains(k, "hunter2") {
			t.Errorf("pool key %q discloses a password", k)
		}
		keys[k] = true
	}
	if len(keys) != 6 {
		t.Errorf("%d distinct pool keys for 6 different clients: %v", len(keys), keys)
	}
	if key(withPassword) != key(withPassword) {
		t.Error("one config, two pool keys: a reload would drop its connections")
	}
}

func TestRedisClientErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := writeCert(t, dir)
	for _, tc := range []struct {
		name string
		c    StoreConfig
		want string
	}{
		{"empty URL (unset variable)", StoreConfig{}, "store redis needs a URL"},
		{"bad URL", StoreConfig{URL: "http://user:hunter2@x"}, "invalid URL"},
		{"password twice", StoreConfig{URL: "redis://:a@x:6379", Password: "b"}, "either in the URL or in the block"},
		{"db twice", StoreConfig{URL: "redis://x:6379/1", DB: "2"}, "db goes either in the URL or in the block"},
		{"db not a number", StoreConfig{URL: "redis://x:6379", DB: "two"}, `db must be a whole number from 0, not "two"`},
		{"db on cluster", StoreConfig{Topology: "cluster", Addrs: []string{"x:7000"}, DB: "1"}, "db is not for store redis cluster"},
		{"no master name", StoreConfig{Topology: "sentinel", Addrs: []string{"x:26379"}}, "needs the master name"},
		{"no sentinel", StoreConfig{Topology: "sentinel", MasterName: "m", Addrs: []string{""}}, `address "" is not host:port`},
		{"address without port", StoreConfig{Topology: "cluster", Addrs: []string{"x"}}, `address "x" is not host:port`},
		{"sentinel password on cluster", StoreConfig{Topology: "cluster", Addrs: []string{"x:7000"}, SentinelPassword: "p"}, "only for store redis sentinel"},
		{"cluster prefix with a hash tag", StoreConfig{Topology: "cluster", Addrs: []string{"x:7000"}, Prefix: "{pspguard}"}, `prefix "{pspguard}" must not contain { or }`},
		{"prefix with a brace", StoreConfig{URL: "redis://x:6379", Prefix: "shop}"}, "must not contain { or }"},
		{"missing CA file", StoreConfig{URL: "redis://x:6379", CAFile: filepath.Join(dir, "none.pem")}, "ca_file:"},
		{"CA file without certificate", StoreConfig{URL: "redis://x:6379", CAFile: junk}, "holds no PEM certificate"},
		{"certificate without key", StoreConfig{URL: "redis://x:6379", CertFile: cert}, "cert_file and key_file go together"},
		{"certificate and wrong key", StoreConfig{URL: "redis://x:6379", CertFile: cert, KeyFile: junk}, "are not a certificate and its key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newRedisClient(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error discloses a password: %v", err)
			}
		})
	}
	// And the files that are right make a TLS client with the certificate.
	rc, err := newRedisClient(StoreConfig{Topology: "cluster", Addrs: []string{"x:7000"}, Prefix: "shop:gw", CAFile: cert, CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rc.key, "/tls=on-") {
		t.Errorf("key %q: TLS not on", rc.key)
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
