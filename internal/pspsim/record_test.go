package pspsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

func TestRecordedRequests(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	k.do("POST", omBase+id+"/captures?trace=1&x=%20", `{"captured_amount":100}`, "Klarna-Idempotency-Key", "key-1", "X-Other", "dropped")
	h.do("GET", "/payments/"+id, "", "X-API-Key", "hg_secret_key", "X-Idempotency-Key", "ignored-on-reads")
	h.do("GET", "/_sim/stats", "")

	reqs := h.sim.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests recorded, want 3", len(reqs))
	}
	capt := reqs[1]
	want := RecordedRequest{
		Seq: 2, Time: h.clock.Now(), PSP: pspKlarna, Operation: "klarna.capture", Merchant: "PK1_shop",
		Method: "POST", Path: omBase + id + "/captures", RawQuery: "trace=1&x=%20",
		Header: http.Header{"Content-Type": {"application/json"}, "Klarna-Idempotency-Key": {"key-1"}},
		Body:   []byte(`{"captured_amount":100}`), Status: 201,
	}
	if !reflect.DeepEqual(capt, want) {
		t.Errorf("recorded\n got %+v\nwant %+v", capt, want)
	}
	hg := reqs[2]
	if hg.PSP != pspHellgate || hg.Merchant != KeyID("hg_secret_key") || hg.Status != 404 ||
		hg.Header.Get("X-Idempotency-Key") != "ignored-on-reads" || hg.Header.Get("X-API-Key") != "" {
		t.Errorf("Hellgate request recorded as %+v", hg)
	}

	// Requests returns copies.
	reqs[1].Body[0] = 'X'
	reqs[1].Header.Set("Content-Type", "text/plain")
	if again := h.sim.Requests()[1]; string(again.Body) != `{"captured_amount":100}` || again.Header.Get("Content-Type") != "application/json" {
		t.Error("changing a returned request changed the record")
	}
}

func TestRecordedRequestJSON(t *testing.T) {
	for _, body := range [][]byte{nil, []byte(`{"a":"ö"}`), {0xff, 0x00, '{'}} {
		r := RecordedRequest{Seq: 9, Method: "POST", Path: "/x", Header: http.Header{}, Body: body}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		_, hasBody := m["body"]
		if hasBody != (string(body) != "\xff\x00{") {
			t.Errorf("%q: body member present %v in %s", body, hasBody, b)
		}
		var back RecordedRequest
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if string(back.Body) != string(body) || back.Seq != 9 || back.Path != "/x" {
			t.Errorf("round trip of %q gave %+v", body, back)
		}
	}
	var r RecordedRequest
	if err := json.Unmarshal([]byte(`{"body_base64":"!"}`), &r); err == nil {
		t.Error("a bad body_base64 was accepted")
	}
}

func TestRequestLogKeepsTheNewest(t *testing.T) {
	l := newRequestLog(3)
	for i := range 5 {
		l.add(RecordedRequest{Path: fmt.Sprint("/", i+1)})
	}
	l.answered(1, 500, outcomeAnswered) // evicted: ignored
	l.answered(4, 0, outcomeDropped)
	var got []string
	for _, r := range l.all() {
		got = append(got, fmt.Sprintf("%d%s:%d:%v", r.Seq, r.Path, r.Status, r.Dropped))
	}
	if fmt.Sprint(got) != "[3/3:0:false 4/4:0:true 5/5:0:false]" {
		t.Errorf("log %v", got)
	}
}
