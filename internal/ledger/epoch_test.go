package ledger

import "testing"

func TestEpochTagSharesTheOrdersSlot(t *testing.T) {
	seen := map[string]bool{}
	for i := range 2000 {
		k := Key{PSP: "klarna", Merchant: "M1", OrderID: string(rune('a'+i%26)) + "-" + itoa(i)}
		tag := k.Slot()
		et := epochTag(tag)
		if clusterSlot(et) != clusterSlot(tag) {
			t.Fatalf("epoch tag %q is in slot %d, the order's tag %q in %d", et, clusterSlot(et), tag, clusterSlot(tag))
		}
		seen[et] = true
	}
	if len(seen) < 1000 {
		t.Errorf("2000 orders share %d epoch keys; want them spread over the slots", len(seen))
	}
	for s, tag := range slotTags() {
		if tag == "" || clusterSlot(tag) != s {
			t.Fatalf("slot %d has tag %q (slot %d)", s, tag, clusterSlot(tag))
		}
	}
}

func itoa(i int) string {
	return string(rune('0'+i/1000%10)) + string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}
