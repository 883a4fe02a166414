package redistest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The helpers below start real Redis servers for one test: a server, a
// primary with a replica, Sentinels, a Redis Cluster, a TLS server. They
// run the machine's redis-server and redis-cli in a temporary directory on
// free loopback ports, without persistence, and stop them when the test
// ends. Like URL, they skip the test when a binary is missing, and fail it
// in CI, which installs both (.ci/run).

// startTimeout bounds how long a server may take to answer, and a
// topology to form.
const startTimeout = 20 * time.Second

// Binary returns the path of a Redis binary (redis-server, redis-cli),
// skipping the test without it, or, in CI, failing it.
func Binary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: CI must run the Redis topology tests against real servers", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

// Proc is a redis-server process a test started: a server, a replica, a
// Sentinel or a Cluster node.
type Proc struct {
	Name string
	Port int
	Dir  string // its working directory, with its config and log

	t    testing.TB
	args []string
	tls  *TLSFiles // for a TLS server, what its clients need
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

// Addr is the process's address, 127.0.0.1:port.
func (p *Proc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// start runs redis-server with args in dir and waits until it answers
// PING on port. The process is killed when the test ends; its output is
// shown if the test failed.
func start(t testing.TB, name, dir string, port int, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Port: port, Dir: dir, t: t, args: args}
	p.run()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s (%s), the last lines of its log:\n%s", p.Name, p.Addr(), lastLines(p.out.String(), 15))
		}
	})
	return p
}

func (p *Proc) run() {
	p.t.Helper()
	cmd := exec.Command(Binary(p.t, "redis-server"), p.args...)
	cmd.Dir = p.Dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done, p.out = cmd, done, out
	p.mu.Unlock()
	p.waitReady()
}

// waitReady waits until the process answers PING.
func (p *Proc) waitReady() {
	p.t.Helper()
	c := redis.NewClient(p.options())
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before answering on %s:\n%s", p.Name, p.Addr(), p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s does not answer on %s: %v\n%s", p.Name, p.Addr(), err, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL (a crash: nothing is flushed or
// handed over) and waits for it to exit. A stopped process is killed too.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// Stop freezes the process with SIGSTOP: it keeps its connections and
// answers nothing, as a hung or partitioned server does.
func (p *Proc) Stop() { p.signal(syscall.SIGSTOP) }

// Continue resumes a stopped process with SIGCONT.
func (p *Proc) Continue() { p.signal(syscall.SIGCONT) }

func (p *Proc) signal(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: sending %v: %v", p.Name, sig, err)
	}
}

// Restart starts a killed process again, with the same arguments, port
// and directory (a Cluster node finds its nodes.conf there).
func (p *Proc) Restart() {
	p.t.Helper()
	p.run()
}

// Client connects to the process; the client is closed when the test ends.
// A TLS server's client presents the client certificate.
func (p *Proc) Client() *redis.Client {
	p.t.Helper()
	c := redis.NewClient(p.options())
	p.t.Cleanup(func() { c.Close() })
	return c
}

func (p *Proc) options() *redis.Options {
	p.t.Helper()
	o := &redis.Options{Addr: p.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1}
	if p.tls != nil {
		cert, err := tls.LoadX509KeyPair(p.tls.ClientCert, p.tls.ClientKey)
		if err != nil {
			p.t.Fatal(err)
		}
		pem, err := os.ReadFile(p.tls.CA)
		if err != nil {
			p.t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		o.TLSConfig = &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"}
	}
	return o
}

// Server starts a redis-server with the given extra configuration
// arguments (such as "--requirepass", "x").
func Server(t testing.TB, args ...string) *Proc {
	t.Helper()
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	return start(t, "redis-server", dir, port, serverArgs(port, dir, args...)...)
}

// serverArgs are the options of every server the helpers start: loopback
// only, no persistence, no protected mode (every client is on loopback).
func serverArgs(port int, dir string, extra ...string) []string {
	return append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no"}, extra...)
}

// Sentinels is a primary with one replica, watched by three Sentinels
// under the master name Master.
type Sentinels struct {
	Master    string
	Primary   *Proc
	Replica   *Proc
	Sentinels [3]*Proc
	t         testing.TB
}

// Sentinel timings: a primary that does not answer for DownAfter is
// down, and a failover that does not finish in FailoverTimeout is tried
// again (by Sentinel's rules, after twice that).
const (
	DownAfter       = 1000 * time.Millisecond
	FailoverTimeout = 3000 * time.Millisecond
)

// StartSentinels starts a primary, its replica and three Sentinels
// watching them (quorum 2), and waits until every Sentinel knows the
// replica and the two other Sentinels, so that a failover can happen.
func StartSentinels(t testing.TB, master string) *Sentinels {
	t.Helper()
	ports := freePorts(t, 5)
	s := &Sentinels{Master: master, t: t}
	dir := t.TempDir()
	mk := func(name string) string {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := mk("primary")
	s.Primary = start(t, "primary", d, ports[0], serverArgs(ports[0], d)...)
	d = mk("replica")
	s.Replica = start(t, "replica", d, ports[1], serverArgs(ports[1], d, "--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))...)
	for i := range s.Sentinels {
		name := fmt.Sprintf("sentinel%d", i+1)
		d := mk(name)
		// Sentinel rewrites its config file: each has its own.
		conf := filepath.Join(d, "sentinel.conf")
		text := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nprotected-mode no\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\n"+
			"sentinel parallel-syncs %s 1\n",
			ports[2+i], d, master, ports[0], master, DownAfter.Milliseconds(), master, FailoverTimeout.Milliseconds(), master)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s.Sentinels[i] = start(t, name, d, ports[2+i], conf, "--sentinel")
	}
	s.WaitInSync()
	s.waitKnown()
	return s
}

// Addrs are the Sentinels' addresses.
func (s *Sentinels) Addrs() []string {
	a := make([]string, len(s.Sentinels))
	for i, p := range s.Sentinels {
		a[i] = p.Addr()
	}
	return a
}

// waitKnown waits until every Sentinel knows the replica and the other
// two Sentinels.
func (s *Sentinels) waitKnown() {
	s.t.Helper()
	ctx := context.Background()
	for _, p := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		defer sc.Close()
		poll(s.t, "sentinel "+p.Addr()+" to know the replica and the other sentinels", func() (bool, string) {
			replicas, err := sc.Replicas(ctx, s.Master).Result()
			if err != nil {
				return false, err.Error()
			}
			others, err := sc.Sentinels(ctx, s.Master).Result()
			if err != nil {
				return false, err.Error()
			}
			return len(replicas) == 1 && len(others) == 2, fmt.Sprintf("%d replicas, %d other sentinels", len(replicas), len(others))
		})
	}
}

// WaitInSync waits until the replica has every write of the primary.
func (s *Sentinels) WaitInSync() {
	s.t.Helper()
	primary := s.Primary.Client()
	replica := s.Replica.Client()
	ctx := context.Background()
	poll(s.t, "the replica to catch up with the primary", func() (bool, string) {
		p, err := primary.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		r, err := replica.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		po, ro := infoField(p, "master_repl_offset"), infoField(r, "slave_repl_offset")
		up := infoField(r, "master_link_status") == "up"
		return up && po != "" && po == ro, fmt.Sprintf("link %s, primary offset %s, replica offset %s", infoField(r, "master_link_status"), po, ro)
	})
}

// MasterAddr is the primary's address as the first Sentinel that answers
// names it.
func (s *Sentinels) MasterAddr() string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var last error
	for _, p := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		addr, err := sc.GetMasterAddrByName(ctx, s.Master).Result()
		sc.Close()
		if err == nil {
			return net.JoinHostPort(addr[0], addr[1])
		}
		last = err
	}
	s.t.Fatalf("no sentinel names the master: %v", last)
	return ""
}

// WaitMaster waits until every Sentinel names addr as the primary, and
// addr says it is one.
func (s *Sentinels) WaitMaster(addr string, within time.Duration) {
	s.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for _, p := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		defer sc.Close()
		pollUntil(s.t, deadline, "sentinel "+p.Addr()+" to name "+addr+" the primary", func() (bool, string) {
			a, err := sc.GetMasterAddrByName(ctx, s.Master).Result()
			if err != nil {
				return false, err.Error()
			}
			got := net.JoinHostPort(a[0], a[1])
			return got == addr, "it names " + got
		})
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	pollUntil(s.t, deadline, addr+" to be a primary", func() (bool, string) {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		role := infoField(info, "role")
		return role == "master", "role " + role
	})
}

// Failover waits until the replica holds every write, asks the
// Sentinels for a failover to it, and waits until it is the primary. The
// two Procs swap places. (SENTINEL FAILOVER itself does not wait for the
// replica: writes the primary takes meanwhile may be lost.)
func (s *Sentinels) Failover() {
	s.t.Helper()
	s.WaitInSync()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr(), MaxRetries: -1})
	defer sc.Close()
	if err := sc.Failover(context.Background(), s.Master).Err(); err != nil {
		s.t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	s.WaitMaster(s.Replica.Addr(), startTimeout)
	s.Primary, s.Replica = s.Replica, s.Primary
}

// StallReplica freezes the replica (SIGSTOP) and has the primary close
// its replication link: every write from now on is on the primary only,
// as when a replica falls behind. Without the closed link the writes
// would wait in the frozen replica's socket buffers and reach it when it
// runs again. Replica.Continue lets it run again; it reconnects to
// whichever server is then the primary.
func (s *Sentinels) StallReplica() {
	s.t.Helper()
	s.Replica.Stop()
	c := redis.NewClient(s.Primary.options())
	defer c.Close()
	n, err := c.ClientKillByFilter(context.Background(), "TYPE", "replica").Result()
	if err != nil || n != 1 {
		s.t.Fatalf("closing the replica's link on the primary: %d links closed, %v", n, err)
	}
}

// Cluster is a Redis Cluster of three masters without replicas, the
// 16384 slots split evenly between them.
type Cluster struct {
	Masters [3]*Proc
	t       testing.TB
}

// StartCluster starts three Cluster nodes, forms a cluster of them with
// redis-cli --cluster create, and waits until every node reports
// cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli := Binary(t, "redis-cli")
	ports := freePorts(t, 6)
	c := &Cluster{t: t}
	addrs := make([]string, len(c.Masters))
	for i := range c.Masters {
		dir := t.TempDir()
		// The bus port is chosen, not port+10000, which may not be free
		// or may not exist.
		c.Masters[i] = start(t, fmt.Sprintf("cluster node %d", i+1), dir, ports[i], serverArgs(ports[i], dir,
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(ports[3+i]),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")...)
		addrs[i] = c.Masters[i].Addr()
	}
	cmd := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// Addrs are the masters' addresses.
func (c *Cluster) Addrs() []string {
	a := make([]string, len(c.Masters))
	for i, p := range c.Masters {
		a[i] = p.Addr()
	}
	return a
}

// WaitOK waits until every node reports cluster_state:ok and knows all
// three masters.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	ctx := context.Background()
	for _, m := range c.Masters {
		rc := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
		defer rc.Close()
		pollUntil(c.t, time.Now().Add(startTimeout), m.Addr()+" to report cluster_state:ok", func() (bool, string) {
			info, err := rc.ClusterInfo(ctx).Result()
			if err != nil {
				return false, err.Error()
			}
			state, known := infoField(info, "cluster_state"), infoField(info, "cluster_known_nodes")
			return state == "ok" && known == "3", "cluster_state:" + state + ", known nodes " + known
		})
	}
}

// KeysByMaster counts, on each master, the keys that match pattern (a
// SCAN MATCH pattern), by master address.
func (c *Cluster) KeysByMaster(pattern string) map[string]int {
	c.t.Helper()
	return KeysByServer(c.t, pattern, c.Masters[:]...)
}

// KeysByServer counts, on each server, the keys that match pattern (a
// SCAN MATCH pattern), by server address.
func KeysByServer(t testing.TB, pattern string, servers ...*Proc) map[string]int {
	t.Helper()
	ctx := context.Background()
	n := make(map[string]int, len(servers))
	for _, p := range servers {
		rc := redis.NewClient(p.options())
		iter := rc.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			n[p.Addr()]++
		}
		err := iter.Err()
		rc.Close()
		if err != nil {
			t.Fatalf("SCAN on %s: %v", p.Addr(), err)
		}
	}
	return n
}

// infoField is the value of one field of an INFO or CLUSTER INFO answer.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// poll calls cond until it holds, failing the test after startTimeout
// with cond's last account of why not.
func poll(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	pollUntil(t, time.Now().Add(startTimeout), what, cond)
}

func pollUntil(t testing.TB, deadline time.Time, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns n distinct loopback ports nothing listens on. Each is
// held until all are picked, so none repeats.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
