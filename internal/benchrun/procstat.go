package benchrun

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. Linux fixes it
// at 100 for user space on every architecture Go runs on.
const userHZ = 100

// cpuTicks is the user and system CPU time of process pid so far, in
// 1/userHZ seconds.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(string(b))
}

// parseStat reads utime and stime, the 14th and 15th fields, of a
// /proc/PID/stat line. The second field, the command in parentheses, may
// hold spaces and parentheses of its own: fields are counted after its
// last ')'.
func parseStat(line string) (int64, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat line without a command: %q", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (the state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat line too short: %q", line)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat line: utime %q, stime %q", f[11], f[12])
	}
	return u + s, nil
}

// cpuModel is the processor's model name from /proc/cpuinfo, or "" when
// it does not say.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}
