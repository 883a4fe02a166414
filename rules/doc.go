// Package rules is the compliance policy of pspguard: which merchants may
// ask Klarna to auto-capture an order (charge the customer at once
// instead of at fulfilment). It reads the rules file a compliance officer
// owns and decides, for one request that may capture at purchase (a
// create-order, a Checkout update, a Hosted Payment Page session, a network
// authorization), allow or refuse with a reason code. It is plain Go over plain values: no server, no I/O on the
// decision path, no allocation.
//
// # The policy
//
// Klarna allows auto-capture only for merchants in these categories:
// in_store, digital_products, vouchers, services_events and
// fulfilment_24h (fulfilment within 24 hours of order creation). Any other
// category needs an explicit, dated approval from Klarna. Some categories
// must send extra merchant data (EMD) with the order, and physical order
// lines in an auto-captured order are a red flag unless the merchant
// hands the goods over in the store or within 24 hours.
//
// # The rules file (version 1)
//
//	version: 1                      # required
//	auto_capture:
//	  allowed_categories: [in_store, digital_products, vouchers, services_events, fulfilment_24h]
//	  require_emd:                  # category -> EMD key required in attachment.body
//	    vouchers: voucher
//	  physical_lines_allowed: [in_store, fulfilment_24h]
//	categories: [travel]            # more category names, besides the built-in ones
//	merchants:                      # keyed by merchant id (Klarna: the Basic-auth username up to its first '_'), or by username
//	  approvedshop:
//	    category: physical_goods
//	    auto_capture_approval:
//	      reference: KL-2026-118
//	      expires: 2027-06-30       # counts through this whole day, UTC
//	default_category: unknown
//
// A merchant is looked up by the credential's user name first
// (Order.User, such as PK12345_1a2b3c4d) and then by its merchant id
// (Order.Merchant, PK12345): an entry for the merchant id covers every
// credential of the merchant, and one for a user name overrides it for
// that credential.
//
// Built-in categories are the five above plus physical_goods and unknown.
// Defaults for keys left out:
//
//   - allowed_categories: the five Klarna categories.
//   - require_emd: none. Klarna names EMD keys for some segments
//     (in_store_payment, voucher, event) but whether create-order carries
//     EMD at all is not settled, so the file states each requirement it
//     wants enforced; nothing is required by default.
//   - physical_lines_allowed: in_store and fulfilment_24h.
//   - categories: none.
//   - merchants: none.
//   - default_category: unknown.
//
// unknown never auto-captures: it may not appear in allowed_categories,
// require_emd or physical_lines_allowed, and a merchant of category
// unknown may not hold an approval.
//
// Loading is strict. Unknown keys, wrong types, unknown category names,
// dates not written YYYY-MM-DD or not on the calendar, approvals without
// reference or expiry date, empty merchant names or EMD keys, duplicate
// keys, several YAML documents in one file and an empty file are all
// errors; Load and Parse report every one of them, with its line, as a
// *Problems.
//
// # Decisions
//
// Decide checks, in order: that auto_capture is a boolean; whether the
// order auto-captures at all; the merchant's category or approval; the
// extra merchant data its category requires; physical order lines. An
// approval exempts a merchant from the physical-lines rule but not from
// the EMD its category requires. An approval counts through the whole of
// its expiry day in UTC: on 2027-06-30T23:59:59Z an approval expiring
// 2027-06-30 allows, on 2027-07-01T00:00:00Z it no longer does.
//
// Every decision carries one of these reasons:
//
//	reason                outcome  when
//	no_auto_capture       allow    the order does not ask to auto-capture (false or absent)
//	category_allowed      allow    the merchant's category is in allowed_categories
//	approved              allow    the merchant holds an unexpired auto_capture_approval
//	category_not_allowed  refuse   a listed merchant's category is not allowed and it holds no approval
//	merchant_unknown      refuse   the merchant is not listed and default_category is not allowed
//	approval_expired      refuse   the merchant's category is not allowed and its approval's last day has passed
//	emd_missing           refuse   the category requires an EMD key that is absent or empty in attachment.body
//	auto_capture_invalid  refuse   auto_capture is present but not a boolean
//	physical_lines        refuse   physical order lines, or none in the request (LinesUnknown), a category not in physical_lines_allowed, no approval
//
// # Decision test cases
//
// Compliance teams check a rules file against cases of their own
// (see LoadCases); `pspguard rules test FILE CASES...` runs them.
package rules
