package benchrun

import (
	"bufio"
	"strconv"
	"strings"
)

// notStoreCalls are the commands of INFO commandstats that are not the
// stores' work: the store_up probe (PING), the clock offset (TIME),
// connection handshakes, and the bench's own INFO and CONFIG.
var notStoreCalls = map[string]bool{
	"ping": true, "time": true, "hello": true, "client": true, "auth": true,
	"select": true, "info": true, "config": true,
}

// parseCommandStats counts the calls INFO commandstats lists: the scripts
// (EVAL and EVALSHA, through which every store call goes), and every
// command the stores caused, those the scripts ran included.
func parseCommandStats(info string) (scripts, all int64) {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		name, _, _ = strings.Cut(name, "|") // a subcommand counts as its command
		if notStoreCalls[name] {
			continue
		}
		var calls int64
		for _, field := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				calls, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		all += calls
		if name == "eval" || name == "evalsha" {
			scripts += calls
		}
	}
	return scripts, all
}
