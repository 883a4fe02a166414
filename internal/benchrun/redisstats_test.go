package benchrun

import "testing"

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=200,usec=3000,usec_per_call=15.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_eval:calls=2,usec=100,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_hset:calls=400,usec=400,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=101,usec=900,usec_per_call=9.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=4,usec=4,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_ping:calls=7,usec=7,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_time:calls=3,usec=3,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n"
	scripts, all := parseCommandStats(info)
	// INFO inside a script (the failover fence) counts as Redis's work,
	// but the bench cannot tell it from its own INFO: both are left out.
	if scripts != 202 || all != 602 {
		t.Errorf("scripts %d, all %d; want 202 and 602", scripts, all)
	}
}
