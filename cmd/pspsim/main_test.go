package main

import (
	"bufio"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-fail-percent", "101"},
		{"-drop-after-capture", "-1"},
		{"-latency", "-1s"},
		{"-read-delay", "-1ms"},
		{"-fail-after-capture", "101"},
		{"-drop-after-change", "-1"},
		{"-fail-after-change", "200"},
		{"extra"},
		{"-password", "shoeshop"},
		{"-password", ":secret"},
		{"-password", "shoeshop:"},
	} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) accepted", args)
		}
	}
}

// run serves until SIGTERM and then returns cleanly.
func TestRunServesAndStops(t *testing.T) {
	pr, pw := io.Pipe()
	log.SetOutput(pw)
	t.Cleanup(func() { log.SetOutput(io.Discard) })
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-listen", "127.0.0.1:0", "-fail-percent", "100", "-password", "shoeshop:secret",
			"-no-limits", "-read-delay", "30ms", "-drop-after-change", "20", "-fail-after-change", "30", "-fail-after-capture", "40"})
	}()

	lines := bufio.NewReader(pr)
	line, err := lines.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("start line %q has no address", line)
	}
	base := strings.TrimSpace(line[i:])

	resp, err := http.Post(base+"/payments/v1/sessions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("with -fail-percent 100: status %d", resp.StatusCode)
	}
	// The other fault flags and -no-limits are what the control API reads.
	for path, want := range map[string]string{
		"/_sim/mode":   `{"no_limits":true}`,
		"/_sim/faults": `{"latency_ms":0,"fail_percent":100,"drop_after_capture":0,"fail_after_capture":40,"drop_after_change":20,"fail_after_change":30,"read_delay_ms":30}`,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.Join(strings.Fields(string(b)), ""); got != want {
			t.Errorf("GET %s: %s, want %s", path, got, want)
		}
	}
	// -password: without failures, a wrong password is refused (401), the
	// right one reaches the order lookup (404: no such order).
	resp, err = http.Post(base+"/_sim/faults", "application/json", strings.NewReader(`{"fail_percent":0}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for password, want := range map[string]int{"wrong": http.StatusUnauthorized, "secret": http.StatusNotFound} {
		req, _ := http.NewRequest("GET", base+"/ordermanagement/v1/orders/5f1e7c7a-0000-4000-8000-000000000001", nil)
		req.SetBasicAuth("shoeshop", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("order read with password %q: status %d, want %d", password, resp.StatusCode, want)
		}
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, lines) // the stop line
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	pw.Close()
}

// -h describes -no-limits as the simulator applies it: to Stripe's
// captures as well as Klarna's.
func TestHelpNoLimits(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	err = run([]string{"-h"})
	os.Stderr = stderr
	w.Close()
	out, _ := io.ReadAll(r)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run(-h) = %v, want flag.ErrHelp", err)
	}
	_, help, _ := strings.Cut(string(out), "-no-limits")
	help, _, _ = strings.Cut(help, "\n  -")
	if !strings.Contains(help, "Klarna and Stripe capture") {
		t.Errorf("-no-limits help %q does not name Stripe's captures", help)
	}
}
