package benchrun

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	// The command holds a space and a parenthesis; utime 1234, stime 56.
	line := "4242 (pspguard (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 100 0 0\n"
	got, err := parseStat(line)
	if err != nil || got != 1290 {
		t.Errorf("parseStat = %d, %v; want 1290", got, err)
	}
	if _, err := parseStat("4242 (short) S 1 2"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestCPUTicksOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := cpuTicks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
