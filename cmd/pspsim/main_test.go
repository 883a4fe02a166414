package main

import (
	"bufio"
	"io"
	"log"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-fail-percent", "101"},
		{"-drop-after-capture", "-1"},
		{"-latency", "-1s"},
		{"extra"},
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
	go func() { done <- run([]string{"-listen", "127.0.0.1:0", "-fail-percent", "100"}) }()

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

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, lines) // the stop line
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	pw.Close()
}
