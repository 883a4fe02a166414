package caddymodule

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// redisLog sends go-redis's own log lines (a dial that failed while Redis
// is down, a Sentinel switching primaries) to Caddy's log as entries of
// the logger "redis"; go-redis would otherwise print them as plain text to
// standard error, in the middle of Caddy's JSON. It looks up Caddy's
// default logger for each line, since a reload may replace it. The lines
// carry addresses and errors, never a password.
type redisLog struct{}

func (redisLog) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("redis").Warn(fmt.Sprintf(format, v...))
}

var redisLogOnce sync.Once

// Redis topologies of `store redis`.
const (
	topologyServer   = "" // one server, given by URL
	topologySentinel = "sentinel"
	topologyCluster  = "cluster"
)

// resolved returns the store config with its {env.NAME} placeholders
// replaced. It is a copy: the handler's config, which Caddy serves at
// /config/ and autosaves, keeps the placeholders, never the values.
func (c *StoreConfig) resolved() StoreConfig {
	repl := caddy.NewReplacer()
	r := func(s string) string { return repl.ReplaceKnown(s, "") }
	out := *c
	out.URL = r(c.URL)
	out.MasterName = r(c.MasterName)
	out.Addrs = make([]string, len(c.Addrs))
	for i, a := range c.Addrs {
		out.Addrs[i] = r(a)
	}
	out.Prefix = r(c.Prefix)
	out.Username = r(c.Username)
	out.Password = r(c.Password)
	out.DB = r(c.DB)
	out.CAFile = r(c.CAFile)
	out.CertFile = r(c.CertFile)
	out.KeyFile = r(c.KeyFile)
	out.SentinelPassword = r(c.SentinelPassword)
	return out
}

// redisClient is how to build the client a resolved store config asks for,
// and the pool key that names it.
type redisClient struct {
	key string
	new func() redis.UniversalClient
}

// newRedisClient checks a resolved store config and prepares its client.
// Errors never quote a URL or a password.
func newRedisClient(c StoreConfig) (redisClient, error) {
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{}) })
	timeout := time.Duration(c.Timeout)
	tlsCfg, tlsKey, err := c.tlsConfig()
	if err != nil {
		return redisClient{}, err
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return redisClient{}, errPrefixBraces(c.Prefix)
	}
	if c.SentinelPassword != "" && c.Topology != topologySentinel {
		return redisClient{}, errors.New("sentinel_password is only for store redis sentinel")
	}
	db := 0
	if c.DB != "" {
		if c.Topology == topologyCluster {
			return redisClient{}, errors.New("db is not for store redis cluster: a Redis Cluster has database 0 only")
		}
		db, err = strconv.Atoi(c.DB)
		if err != nil || db < 0 {
			return redisClient{}, fmt.Errorf("db must be a whole number from 0, not %q", c.DB)
		}
	}
	// Everything that shapes a client names its pool entry, so a changed
	// config gets a new client; secrets only as digests, so the key can
	// never disclose them.
	key := func(kind, addrs, user, password string) string {
		return fmt.Sprintf("redis/%s/%s/user=%s/password=%s/sentinel-password=%s/db=%d/tls=%s/timeout=%s",
			kind, addrs, user, digest(password), digest(c.SentinelPassword), db, tlsKey, timeout)
	}

	switch c.Topology {
	case topologyServer:
		if c.URL == "" {
			return redisClient{}, errors.New("store redis needs a URL")
		}
		opts, err := redis.ParseURL(c.URL)
		if err != nil {
			// The URL may hold a password: do not echo it back.
			return redisClient{}, errors.New("invalid URL")
		}
		if c.Username != "" || c.Password != "" {
			if opts.Username != "" || opts.Password != "" {
				return redisClient{}, errors.New("username and password go either in the URL or in the block, not both")
			}
			opts.Username, opts.Password = c.Username, c.Password
		}
		if c.DB != "" {
			if u, err := url.Parse(c.URL); err == nil && strings.Trim(u.Path, "/") != "" {
				return redisClient{}, errors.New("db goes either in the URL or in the block, not both")
			}
			opts.DB = db
		}
		if tlsCfg != nil {
			if opts.TLSConfig != nil { // rediss://: keep its server name
				tlsCfg.ServerName = opts.TLSConfig.ServerName
			}
			opts.TLSConfig = tlsCfg
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
		opts.MaxRetries = -1   // a retried script could run twice; the caller decides
		opts.DialerRetries = 1 // a dead Redis must give a fast 503, not a slow one
		tlsKey := tlsKey
		if opts.TLSConfig != nil && tlsCfg == nil {
			tlsKey = "url"
		}
		k := fmt.Sprintf("redis/server/%s/user=%s/password=%s/db=%d/tls=%s/timeout=%s",
			opts.Addr, opts.Username, digest(opts.Password), opts.DB, tlsKey, timeout)
		return redisClient{key: k, new: func() redis.UniversalClient { return redis.NewClient(opts) }}, nil

	case topologySentinel:
		if c.MasterName == "" {
			return redisClient{}, errors.New("store redis sentinel needs the master name")
		}
		if err := checkAddrs(c.Addrs); err != nil {
			return redisClient{}, err
		}
		opts := &redis.FailoverOptions{
			MasterName: c.MasterName, SentinelAddrs: c.Addrs, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password, DB: db, TLSConfig: tlsCfg,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
			MaxRetries: -1, DialerRetries: 1,
		}
		k := key("sentinel/master="+c.MasterName, strings.Join(c.Addrs, ","), c.Username, c.Password)
		return redisClient{key: k, new: func() redis.UniversalClient { return redis.NewFailoverClient(opts) }}, nil

	case topologyCluster:
		if err := checkAddrs(c.Addrs); err != nil {
			return redisClient{}, err
		}
		opts := &redis.ClusterOptions{
			Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: tlsCfg,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
			// A MOVED or ASK answer means the command did not run, so
			// following it is safe; a retry after an error is not.
			MaxRetries: -1, DialerRetries: 1,
		}
		k := key("cluster", strings.Join(c.Addrs, ","), c.Username, c.Password)
		return redisClient{key: k, new: func() redis.UniversalClient { return redis.NewClusterClient(opts) }}, nil
	}
	return redisClient{}, fmt.Errorf("unknown topology %q", c.Topology)
}

// errPrefixBraces refuses a prefix with a brace: each order's keys carry
// their own hash tag, which Redis Cluster looks for at the first '{', so a
// brace in the prefix would put every key on one slot, or split an order's.
func errPrefixBraces(prefix string) error {
	return fmt.Errorf("prefix %q must not contain { or }: every order's keys carry their own hash tag, so that orders spread over a Cluster's slots", prefix)
}

// checkAddrs checks that every address is host:port.
func checkAddrs(addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("needs at least one address")
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("address %q is not host:port", a)
		}
	}
	return nil
}

// tlsConfig builds the client's TLS settings: nil without tls or a
// certificate file. The key names the files by a digest of their contents,
// so a renewed certificate gets a new client at the next reload.
func (c StoreConfig) tlsConfig() (*tls.Config, string, error) {
	if !c.TLS && c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil, "off", nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	h := sha256.New()
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile)
		}
		h.Write(pem)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, "", errors.New("cert_file and key_file go together")
	}
	if c.CertFile != "" {
		certPEM, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, "", fmt.Errorf("cert_file: %w", err)
		}
		keyPEM, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("key_file: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// The error may quote neither file's contents; say which files.
			return nil, "", fmt.Errorf("cert_file %s and key_file %s are not a certificate and its key", c.CertFile, c.KeyFile)
		}
		cfg.Certificates = []tls.Certificate{cert}
		h.Write(certPEM)
		h.Write(keyPEM)
	}
	return cfg, "on-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// digestKey keys the digests of secrets: random per process, so a digest
// tells nothing about a password outside this process, not even whether
// two processes use the same one.
var digestKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return k
}()

// digest names a secret in a pool key without disclosing it.
func digest(secret string) string {
	if secret == "" {
		return "none"
	}
	m := hmac.New(sha256.New, digestKey)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)[:16])
}
