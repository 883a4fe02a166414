package psp

import "github.com/pspguard/pspguard/internal/jsonstrict"

// The member names the dialects read are the gateway's own text: the
// decision log may name them in a refusal message. Any other member name is
// the sender's and is not logged.
func init() {
	for _, names := range [][]string{createFields, captureFields, updateAuthorizationFields, orderLineFields, attachmentFields} {
		jsonstrict.RegisterNames(names...)
	}
	jsonstrict.RegisterNames("refunded_amount", "amount", "currency_code", "reference")
}

// LineTypes is the set of order line types a request carries, by Klarna's
// names for them.
type LineTypes uint16

// Order line types (Klarna's order_lines[].type). LineOther stands for any
// type Klarna does not define.
const (
	LinePhysical LineTypes = 1 << iota
	LineDigital
	LineGiftCard
	LineDiscount
	LineShippingFee
	LineSalesTax
	LineStoreCredit
	LineSurcharge
	LineReturnFee
	LineOther
)

var lineTypeNames = [...]string{"physical", "digital", "gift_card", "discount", "shipping_fee",
	"sales_tax", "store_credit", "surcharge", "return_fee", "other"}

// lineType classifies an order line's type. A PSP matching its enum
// case-insensitively reads "PHYSICAL" as physical, so the gateway does too.
// An absent type is no type.
func lineType(t string) LineTypes {
	if t == "" {
		return 0
	}
	for i, name := range lineTypeNames[:len(lineTypeNames)-1] {
		if t == name {
			return 1 << i
		}
	}
	for i, name := range lineTypeNames[:len(lineTypeNames)-1] {
		if jsonstrict.FoldEqual(t, name) {
			return 1 << i
		}
	}
	return LineOther
}

// Each calls fn with the name of every type in the set, in a fixed order.
func (lt LineTypes) Each(fn func(name string)) {
	for i, name := range lineTypeNames {
		if lt&(1<<i) != 0 {
			fn(name)
		}
	}
}

// ParseLineType is the type named name ("physical", ..., "other"), as Each
// names it; ok is false for any other name.
func ParseLineType(name string) (lt LineTypes, ok bool) {
	for i, n := range lineTypeNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// klarnaEMDKeys are the extra merchant data packages Klarna defines
// (Klarna's "Extra merchant data" reference): names the decision log may
// record when an order carries them.
var klarnaEMDKeys = map[string]bool{
	"air_reservation_details": true, "bus_reservation_details": true, "car_rental_reservation_details": true,
	"customer_account_info": true, "event": true, "ferry_reservation_details": true,
	"hotel_reservation_details": true, "in_store_payment": true, "marketplace_seller_info": true,
	"marketplace_winner_info": true, "other_delivery_address": true, "payment_history_full": true,
	"payment_history_simple": true, "subscription": true, "train_reservation_details": true,
	"voucher": true,
}

// KnownEMDKey reports whether key is an extra merchant data package Klarna
// defines.
func KnownEMDKey(key string) bool { return klarnaEMDKeys[key] }
