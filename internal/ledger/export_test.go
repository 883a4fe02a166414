package ledger

// KeySlot is keySlot, for the tests of the key layout.
var KeySlot = keySlot
