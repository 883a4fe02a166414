package main

import (
	"testing"
	"time"
)

func TestConfig(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	cfg, err := config(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rounds != 7 || cfg.Seconds != 4*time.Second || cfg.LatencySeconds != 2*time.Second ||
		cfg.Conns != 32 || !cfg.Micro || cfg.Pin || cfg.Compare != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	env = map[string]string{"BENCH_ROUNDS": "3", "BENCH_MICRO": "0", "BENCH_PIN": "1", "BENCH_COMPARE": "/tmp/old"}
	cfg, err = config(getenv)
	if err != nil || cfg.Rounds != 3 || cfg.Micro || !cfg.Pin || cfg.Compare != "/tmp/old" {
		t.Errorf("settings: %+v, %v", cfg, err)
	}
	for _, bad := range []string{"0", "x", "-1"} {
		env = map[string]string{"BENCH_SECONDS": bad}
		if _, err := config(getenv); err == nil {
			t.Errorf("BENCH_SECONDS=%s accepted", bad)
		}
	}
}
