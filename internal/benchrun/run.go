package benchrun

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is a bench run.
type Config struct {
	Root           string        // the repository: bin/, testdata/rules/
	Rounds         int           // interleaved rounds
	Seconds        time.Duration // per throughput run
	LatencySeconds time.Duration // per one-connection run
	Conns          int           // connections of a throughput run
	Micro          bool          // run the Go micro-benchmarks first
	// Pin puts wrk and the simulator on CPU 0, every Caddy and Redis on
	// CPU 1, each Caddy with GOMAXPROCS=1.
	Pin bool
	// Compare, when set, is another pspguard binary (an earlier build) run
	// with the memory store as one more target, interleaved with the rest:
	// before and after under the same conditions.
	Compare string
	Out     io.Writer // progress and results
}

// Tools are the programs a run needs, and what installs them.
var Tools = []struct{ Name, Install string }{
	{"wrk", "apt-get install wrk"},
	{"redis-server", "apt-get install redis-server"},
}

// Preflight reports what a run lacks: a tool not on PATH (lookPath is
// exec.LookPath), or a binary make build has not built. It installs
// nothing.
func Preflight(cfg Config, lookPath func(string) (string, error)) error {
	var missing []string
	for _, t := range Tools {
		if _, err := lookPath(t.Name); err != nil {
			missing = append(missing, fmt.Sprintf("%s is not installed (on Debian or Ubuntu: %s)", t.Name, t.Install))
		}
	}
	bins := []string{filepath.Join(cfg.Root, "bin", "pspguard"), filepath.Join(cfg.Root, "bin", "pspsim")}
	if cfg.Compare != "" {
		bins = append(bins, cfg.Compare)
	}
	for _, b := range bins {
		if st, err := os.Stat(b); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, fmt.Sprintf("%s is missing (make bench builds bin/ first)", b))
		}
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	return nil
}

// bench is a run in progress.
type bench struct {
	cfg     Config
	tmp     string
	procs   []*exec.Cmd
	client  []string // command prefix of wrk and the simulator
	proxy   []string // command prefix of Caddy
	procsN  int      // GOMAXPROCS of Caddy
	simPort int
	port    map[Target]int
	pid     map[Target]int
	redis   *redis.Client
	redisP  int // redis-server's pid
	auth    string
}

// Run runs the bench and prints its results to cfg.Out. It fails only when
// the bench itself breaks (a tool is missing, a process does not start, a
// request fails), not when a target is missed.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := Preflight(cfg, exec.LookPath); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "pspguard-bench-")
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, tmp: tmp, port: map[Target]int{}, pid: map[Target]int{},
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("digitalshop:secret"))}
	defer b.stop()

	if err := b.startRedis(ctx); err != nil {
		return err
	}
	footprint := 0.0
	if cfg.Micro {
		if footprint, err = b.micro(ctx); err != nil {
			return err
		}
	}
	targets, err := b.startTargets(ctx)
	if err != nil {
		return err
	}
	for _, name := range []string{"create", "capture"} {
		script := map[string]string{"create": createLua, "capture": captureLua}[name]
		if err := os.WriteFile(filepath.Join(tmp, name+".lua"), []byte(script), 0o644); err != nil {
			return err
		}
	}

	fmt.Fprintf(cfg.Out, "== Load: %d interleaved rounds of %s at %d connections and %s at 1 connection per row\n",
		cfg.Rounds, cfg.Seconds, cfg.Conns, cfg.LatencySeconds)
	if len(b.proxy) > 0 {
		fmt.Fprintln(cfg.Out, "   wrk and pspsim on CPU 0, Caddy and Redis on CPU 1, GOMAXPROCS=1")
	} else {
		fmt.Fprintln(cfg.Out, "   every process on every core; pspsim with GOMAXPROCS=1")
	}
	// Warm up every target once: connection pools, first orders, page faults.
	for _, t := range targets {
		if err := b.resetSim(ctx); err != nil {
			return err
		}
		if _, err := b.wrk(ctx, t, cfg.Conns, time.Second, "create", "warm-"+string(t)); err != nil {
			return fmt.Errorf("warming up %s: %w", t, err)
		}
	}
	var samples []Sample
	for round := 1; round <= cfg.Rounds; round++ {
		for _, op := range Ops {
			// Rotate the order of the targets from round to round.
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				s, err := b.run(ctx, round, op, t)
				if err != nil {
					return err
				}
				samples = append(samples, s...)
			}
		}
		fmt.Fprintf(cfg.Out, "   round %d/%d done\n", round, cfg.Rounds)
	}

	fmt.Fprintf(cfg.Out, "\n== Results (%d cores, %s, %s)\n\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	Summarize(samples, targets).Write(cfg.Out, cfg.Conns, footprint)
	return nil
}

// stop ends every process the run started and removes its files.
func (b *bench) stop() {
	if b.redis != nil {
		b.redis.Close()
	}
	for _, c := range b.procs {
		_ = c.Process.Kill()
	}
	for _, c := range b.procs {
		_ = c.Wait()
	}
	os.RemoveAll(b.tmp)
}

// start starts a process whose output goes to a log file of its own.
func (b *bench) start(name string, env []string, argv ...string) (*exec.Cmd, error) {
	logPath := filepath.Join(b.tmp, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = b.cfg.Root
	c.Stdout, c.Stderr = f, f
	// Caddy keeps its autosave and instance data here, not in the
	// caller's home.
	c.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(b.tmp, "config"), "XDG_DATA_HOME="+filepath.Join(b.tmp, "data"))
	c.Env = append(c.Env, env...)
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	b.procs = append(b.procs, c)
	return c, nil
}

// waitPort waits for a listener on port, for at most 10 s.
func (b *bench) waitPort(ctx context.Context, port int, name string) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(filepath.Join(b.tmp, name+".log"))
	return fmt.Errorf("%s does not listen on port %d; its log:\n%s", name, port, log)
}

// freePort returns a loopback port nothing listened on a moment ago. Every
// caller starts its listener before the next call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startRedis starts a throwaway Redis for the Redis micro-benchmarks and
// the Redis rows.
func (b *bench) startRedis(ctx context.Context) error {
	p, err := freePort()
	if err != nil {
		return err
	}
	c, err := b.start("redis", nil, "redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(p),
		"--save", "", "--appendonly", "no", "--dir", b.tmp)
	if err != nil {
		return err
	}
	b.redisP = c.Process.Pid
	if err := b.waitPort(ctx, p, "redis"); err != nil {
		return err
	}
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", p)
	opts, _ := redis.ParseURL(url)
	b.redis = redis.NewClient(opts)
	return os.Setenv("PSPGUARD_REDIS_URL", url)
}

// startTargets starts the simulator and a Caddy per target behind it, and
// returns the targets in the table's order.
func (b *bench) startTargets(ctx context.Context) ([]Target, error) {
	b.procsN = runtime.NumCPU()
	if b.cfg.Pin && runtime.NumCPU() >= 2 {
		if _, err := exec.LookPath("taskset"); err == nil {
			b.client = []string{"taskset", "-c", "0"}
			b.proxy = []string{"taskset", "-c", "1"}
			b.procsN = 1
			if err := exec.Command("taskset", "-pc", "1", strconv.Itoa(b.redisP)).Run(); err != nil {
				return nil, fmt.Errorf("pinning redis-server: %w", err)
			}
		}
	}
	var err error
	if b.simPort, err = freePort(); err != nil {
		return nil, err
	}
	// The simulator runs with GOMAXPROCS=1: it can never take every core
	// from Caddy, and it still answers far faster than any row behind Caddy
	// (see the direct rows).
	argv := append(append([]string{}, b.client...), filepath.Join(b.cfg.Root, "bin", "pspsim"),
		"-listen", fmt.Sprintf("127.0.0.1:%d", b.simPort), "-seed", "1")
	sim, err := b.start("pspsim", []string{"GOMAXPROCS=1"}, argv...)
	if err != nil {
		return nil, err
	}
	if err := b.waitPort(ctx, b.simPort, "pspsim"); err != nil {
		return nil, err
	}
	b.port[Direct], b.pid[Direct] = b.simPort, sim.Process.Pid

	rulesFile := filepath.Join(b.cfg.Root, "testdata", "rules", "example.yaml")
	guard := "psp_guard {\n\t\trules " + rulesFile + "\n\t}"
	pspguard := filepath.Join(b.cfg.Root, "bin", "pspguard")
	targets := []Target{Direct, Caddy, GuardMemory, GuardRedis}
	blocks := map[Target]string{
		Caddy:       "",
		GuardMemory: guard,
		GuardRedis: "psp_guard {\n\t\trules " + rulesFile + "\n\t\tstore redis " + os.Getenv("PSPGUARD_REDIS_URL") +
			" {\n\t\t\tprefix pspguard-bench\n\t\t}\n\t}",
	}
	bins := map[Target]string{Caddy: pspguard, GuardMemory: pspguard, GuardRedis: pspguard}
	if b.cfg.Compare != "" {
		targets = append(targets, Baseline)
		blocks[Baseline], bins[Baseline] = guard, b.cfg.Compare
	}
	for _, t := range targets[1:] {
		if err := b.startCaddy(ctx, t, bins[t], blocks[t]); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

func (b *bench) startCaddy(ctx context.Context, t Target, bin, block string) error {
	p, err := freePort()
	if err != nil {
		return err
	}
	caddyfile := fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n}\n:%d {\n\t%s\n\treverse_proxy 127.0.0.1:%d\n}\n", p, block, b.simPort)
	path := filepath.Join(b.tmp, string(t)+".caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		return err
	}
	argv := append(append([]string{}, b.proxy...), bin, "run", "--config", path, "--adapter", "caddyfile")
	c, err := b.start(string(t), []string{"GOMAXPROCS=" + strconv.Itoa(b.procsN)}, argv...)
	if err != nil {
		return err
	}
	b.port[t], b.pid[t] = p, c.Process.Pid
	return b.waitPort(ctx, p, string(t))
}

func (b *bench) url(t Target) string { return fmt.Sprintf("http://127.0.0.1:%d", b.port[t]) }

func (b *bench) resetSim(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.url(Direct)+"/_sim/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("resetting the simulator: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("resetting the simulator: %s", resp.Status)
	}
	return nil
}

// orderBody is an order of 200,000,000: enough for every capture of 1 a
// run makes.
const orderBody = `{"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE","order_amount":200000000,"order_tax_amount":0,"order_lines":[{"type":"digital","reference":"credit","name":"Credit","quantity":1,"unit_price":200000000,"tax_rate":0,"total_amount":200000000,"total_tax_amount":0}]}`

// createOrders creates one order per connection through t, so that
// pspguard learns them from the answers, and writes their ids to a file
// for the capture script.
func (b *bench) createOrders(ctx context.Context, t Target) (string, error) {
	var ids bytes.Buffer
	tag := rand.Uint64()
	for i := 1; i <= b.cfg.Conns; i++ {
		url := fmt.Sprintf("%s/payments/v1/authorizations/orders-%d-%d/order", b.url(t), tag, i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(orderBody))
		req.Header.Set("Authorization", b.auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("creating orders through %s: %w", t, err)
		}
		var order struct {
			OrderID string `json:"order_id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&order)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || order.OrderID == "" {
			return "", fmt.Errorf("creating orders through %s: %s", t, resp.Status)
		}
		ids.WriteString(order.OrderID + "\n")
	}
	path := filepath.Join(b.tmp, "orders")
	return path, os.WriteFile(path, ids.Bytes(), 0o644)
}

// wrk runs a load of script against t.
func (b *bench) wrk(ctx context.Context, t Target, conns int, d time.Duration, script string, args ...string) (WrkResult, error) {
	argv := append(append([]string{}, b.client...), "wrk", "-t1", "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "-H", "Authorization: "+b.auth, "-H", "Content-Type: application/json",
		"-s", filepath.Join(b.tmp, script+".lua"), b.url(t), "--")
	argv = append(argv, args...)
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return WrkResult{}, fmt.Errorf("wrk against %s: %w:\n%s", t, err, out.String())
	}
	return ParseWrk(out.String())
}

// run is one throughput run and one single-connection run of op through t.
func (b *bench) run(ctx context.Context, round int, op Op, t Target) ([]Sample, error) {
	var out []Sample
	for _, mode := range []Mode{Load, Single} {
		if err := b.resetSim(ctx); err != nil {
			return nil, err
		}
		args := []string{fmt.Sprintf("r%d-%s-%s-%d", round, t, mode, rand.Uint64())}
		if op == Capture {
			orders, err := b.createOrders(ctx, t)
			if err != nil {
				return nil, err
			}
			args = append(args, orders)
		}
		conns, d := b.cfg.Conns, b.cfg.Seconds
		if mode == Single {
			conns, d = 1, b.cfg.LatencySeconds
		}
		pids := []int{b.pid[t]}
		if t == GuardRedis {
			pids = append(pids, b.redisP)
			if err := b.redis.ConfigResetStat(ctx).Err(); err != nil {
				return nil, fmt.Errorf("resetting Redis's command stats: %w", err)
			}
		}
		cpu0, err := sumTicks(pids)
		if err != nil {
			return nil, err
		}
		r, err := b.wrk(ctx, t, conns, d, string(op), args...)
		if err != nil {
			return nil, fmt.Errorf("%s against %s: %w", op, t, err)
		}
		cpu1, err := sumTicks(pids)
		if err != nil {
			return nil, err
		}
		s := Sample{Round: round, Op: op, Target: t, Mode: mode, RPS: r.RPS(),
			P50: float64(r.P50), P99: float64(r.P99),
			CPU: float64(cpu1-cpu0) * 1e6 / userHZ / float64(r.Requests)}
		if t == GuardRedis {
			info, err := b.redis.Info(ctx, "commandstats").Result()
			if err != nil {
				return nil, fmt.Errorf("reading Redis's command stats: %w", err)
			}
			scripts, all := parseCommandStats(info)
			s.RedisSent, s.RedisRun = float64(scripts)/float64(r.Requests), float64(all)/float64(r.Requests)
		}
		out = append(out, s)
	}
	return out, nil
}

func sumTicks(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		t, err := cpuTicks(p)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}
