package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Credentials and what the tests send them as. Each is a value no log line
// could carry by chance.
const (
	klarnaUser     = "PK12345_1a2b3c4d"
	klarnaPassword = "Kl4rna-pw-7Qz9xW2v"
	klarnaAPIKey   = "klarna_test_api_N2Q5Y2JhZjEtS3p4Vw"
	hellgateKey    = "hg_sk_test_5Fh2Kq8Lm3Np7Rt1"
	bearerToken    = "sk_test_51HbT9xQz2Lm8Vv4Rk"
	authToken      = "tok_3Jd8Kx2Qw9Zp5Lm7"
	sessionCookie  = "sess_9Vq2Lx7Kd3Wz8Pm4"
)

// secretForms are the strings that must appear nowhere: every credential
// as sent, and base64 forms in which a header could carry it.
func secretForms() []string {
	b64 := base64.StdEncoding.EncodeToString
	forms := []string{klarnaPassword, klarnaAPIKey, hellgateKey, bearerToken, authToken, sessionCookie,
		b64([]byte(klarnaUser + ":" + klarnaPassword)), b64([]byte(klarnaAPIKey))}
	for _, s := range []string{klarnaPassword, hellgateKey, bearerToken, authToken, sessionCookie} {
		forms = append(forms, b64([]byte(s)))
	}
	return forms
}

// credentialLogFilter is the log format the README documents: JSON, with
// every credential-bearing request header replaced by a digest.
const credentialLogFilter = `format filter {
			wrap json
			request>headers>Authorization hash
			request>headers>Proxy-Authorization hash
			request>headers>Cookie hash
			request>headers>X-Api-Key hash
			request>headers>X-Auth-Token hash
			request>headers>X-Access-Token hash
			request>headers>Api-Key hash
		}`

// No credential reaches anything a pspguard process writes, whoever writes
// it: not its standard output and error (Caddy's own log at debug level,
// with reverse_proxy's lines on every upstream round trip), not the access
// logs, not the decision log. Each dialect's credentials (Klarna Basic auth
// with a user name and with a raw API key, Hellgate's X-API-Key) and other
// token-like headers go through guarded and passed-through requests while
// the PSP is down, times out, fails with 5xx, and resets connections.
func TestNoCredentialInAnyOutput(t *testing.T) {
	bins, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("../../testdata/rules/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	startSim := func(name string, args ...string) int {
		port := freePort(t)
		p := start(t, name, nil, filepath.Join(bins, "pspsim"), append([]string{"-listen", "127.0.0.1:" + strconv.Itoa(port), "-seed", "1"}, args...)...)
		p.waitPort(t, port)
		return port
	}
	upstreams := []upstream{
		{"down", "127.0.0.1:" + strconv.Itoa(freePort(t))}, // nothing listens
		{"timeout", "127.0.0.1:" + strconv.Itoa(startSim("pspsim slow", "-latency", "2s"))},
		{"5xx", "127.0.0.1:" + strconv.Itoa(startSim("pspsim failing", "-fail-percent", "100"))},
		{"reset", "127.0.0.1:" + strconv.Itoa(startSim("pspsim dropping", "-drop-after-capture", "100"))},
	}

	t.Run("documented log filter, debug and access logs", func(t *testing.T) {
		checkNoCredential(t, bins, rules, upstreams, true)
	})
	t.Run("Caddy's default logging", func(t *testing.T) {
		checkNoCredential(t, bins, rules, upstreams, false)
	})
}

// upstream is a PSP with a fault, at addr.
type upstream struct{ fault, addr string }

// checkNoCredential runs a pspguard in front of the upstreams, one site per
// upstream and dialect, sends every credential through each, and greps
// everything the process wrote. logged turns on what writes the most: the
// default log at debug level and an access log per site, both with the
// documented filter, and the decision log in a file.
func checkNoCredential(t *testing.T, bins, rules string, upstreams []upstream, logged bool) {
	dir := t.TempDir()
	type site struct{ fault, psp, base string }
	var sites []site
	ports := freePorts(t, 1+2*len(upstreams))
	admin, ports := ports[0], ports[1:]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n", admin)
	if logged {
		fmt.Fprintf(&cfg, `	log {
		level DEBUG
		%s
	}
	log decisions {
		include http.handlers.psp_guard.decision
		output file %s
		format json {
			time_format rfc3339
		}
	}
}
`, credentialLogFilter, filepath.Join(dir, "decisions.log"))
	} else {
		cfg.WriteString("}\n")
	}
	for _, u := range upstreams {
		for _, dialect := range []string{"klarna", "hellgate"} {
			port := ports[len(sites)]
			sites = append(sites, site{u.fault, dialect, "http://127.0.0.1:" + strconv.Itoa(port)})
			fmt.Fprintf(&cfg, "\n:%d {\n", port)
			if logged {
				fmt.Fprintf(&cfg, "\tlog {\n\t\toutput file %s\n\t\t%s\n\t}\n", filepath.Join(dir, "access-"+u.fault+"-"+dialect+".log"), credentialLogFilter)
			}
			fmt.Fprintf(&cfg, `	psp_guard {
		psp %s
		rules %s
		lookup_timeout 500ms
		upstream_timeout 500ms
	}
	reverse_proxy %s {
		transport http {
			response_header_timeout 500ms
		}
	}
}
`, dialect, rules, u.addr)
		}
	}
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := start(t, "pspguard", []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "HOME=" + dir},
		filepath.Join(bins, "pspguard"), "run", "--config", config, "--adapter", "caddyfile")
	for _, s := range sites {
		port, _ := strconv.Atoi(s.base[strings.LastIndex(s.base, ":")+1:])
		gw.waitPort(t, port)
	}

	send := func(method, url, body string, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "" // a reset the gateway passed on
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// idOf is the order or payment id in a create answer, or a UUID no PSP
	// knows.
	idOf := func(body string) string {
		var created struct {
			OrderID string `json:"order_id"`
			ID      string `json:"id"`
		}
		_ = json.Unmarshal([]byte(body), &created)
		if created.OrderID+created.ID != "" {
			return created.OrderID + created.ID
		}
		return "f3392f8b-6116-4073-ab96-e330819e2c07"
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(klarnaUser+":"+klarnaPassword))
	rawKey := "Basic " + base64.StdEncoding.EncodeToString([]byte(klarnaAPIKey))
	others := []string{"Cookie", "session=" + sessionCookie, "X-Auth-Token", authToken}
	with := func(hdr ...string) []string { return append(hdr, others...) }
	order := `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":1000,"order_tax_amount":0,"auto_capture":false,
		"order_lines":[{"type":"digital","name":"E-book","quantity":1,"unit_price":1000,"tax_rate":0,"total_amount":1000,"total_tax_amount":0}]}`
	// Tokens and idempotency keys of this run only: the simulators live
	// across runs, and a PSP answers a repeated one from memory.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for _, s := range sites {
		var statuses []int
		note := func(st int, _ string) { statuses = append(statuses, st) }
		if s.psp == "klarna" {
			for i, auth := range []string{basic, rawKey} {
				st, body := send("POST", s.base+"/payments/v1/authorizations/tok-"+run+s.fault+strconv.Itoa(i)+"/order", order, with("Authorization", auth)...)
				note(st, body)
				id := idOf(body)
				note(send("POST", s.base+"/ordermanagement/v1/orders/"+id+"/captures", `{"captured_amount":100}`,
					with("Authorization", auth, "Klarna-Idempotency-Key", "k-"+run+s.fault+strconv.Itoa(i))...))
				note(send("GET", s.base+"/ordermanagement/v1/orders/"+id, "", "Authorization", auth))
				note(send("GET", s.base+"/payments/v1/sessions/s-1", "", with("Authorization", auth)...))
			}
			note(send("POST", s.base+"/v1/charges", "", "Authorization", "Bearer "+bearerToken, "Proxy-Authorization", "Bearer "+bearerToken))
		} else {
			st, body := send("POST", s.base+"/payments/one-off", `{"amount":1000,"currency_code":"EUR","reference":"r-1"}`, with("X-API-Key", hellgateKey)...)
			note(st, body)
			id := idOf(body)
			note(send("POST", s.base+"/payments/"+id+"/capture", `{"amount":100,"currency_code":"EUR","reference":"c-1"}`, with("X-API-Key", hellgateKey, "X-Idempotency-Key", "k-"+run+s.fault)...))
			note(send("GET", s.base+"/payments/"+id, "", "X-API-Key", hellgateKey))
			note(send("GET", s.base+"/tokens/t-1", "", with("X-API-Key", hellgateKey)...))
		}
		failed := 0
		for _, st := range statuses {
			if st == 0 || st >= 500 {
				failed++
			}
		}
		if failed == 0 {
			t.Errorf("%s %s: no request met the fault (statuses %v)", s.fault, s.psp, statuses)
		} else {
			t.Logf("%s %s: statuses %v", s.fault, s.psp, statuses)
		}
	}

	// A clean stop writes every queued line before the process exits.
	resp, err := http.Post("http://127.0.0.1:"+strconv.Itoa(admin)+"/stop", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-gw.done:
	case <-time.After(30 * time.Second):
		t.Fatal("pspguard did not stop")
	}

	outputs := map[string]string{"pspguard stdout and stderr": gw.out.String()}
	files, _ := filepath.Glob(filepath.Join(dir, "*.log*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		outputs[filepath.Base(f)] = string(b)
	}
	// The outputs are not empty: debug lines of reverse_proxy with the
	// request headers, access lines and decision lines are all there.
	all := strings.Join(func() []string {
		var v []string
		for _, o := range outputs {
			v = append(v, o)
		}
		return v
	}(), "\n")
	for _, want := range []string{`"upstream roundtrip"`, `"handled request"`, `"http.handlers.psp_guard.decision"`, `"X-Api-Key"`, `"Authorization"`} {
		if logged && !strings.Contains(all, want) {
			t.Errorf("no output contains %s: the test would not see a leak", want)
		}
	}
	for name, out := range outputs {
		for _, secret := range secretForms() {
			if i := strings.Index(out, secret); i >= 0 {
				start := max(0, i-200)
				t.Errorf("%s contains the credential %q: ...%s...", name, secret, out[start:min(len(out), i+len(secret)+50)])
			}
		}
	}
}
