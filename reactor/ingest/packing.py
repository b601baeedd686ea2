"""Stored bodies and trace entries packed: raw deflate with a preset dictionary of Chargebee's
envelope, about a sixth of the JSON (docs/benchmarks.md, "Redis memory per event"). A value without
the mark is read as it is, and every dictionary ever shipped stays readable.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

# A packed value is MARK, the dictionary's version byte, then the deflate stream.
MARK = b"\x1f"
"""First byte of a packed value; JSON (an object, an array, whitespace) never starts with it."""

LEVEL = 6
# Values under SMALL bytes (an invoice trace's receipt) use a dictionary of their own in a 512-byte
# window, which packs them in a few microseconds; the large window of the envelope's dictionary costs
# some 50 us a body.
SMALL = 512

# An event body is mostly the same keys and enumerated values in the same order (`"object":"invoice"`,
# `"price_type":"tax_exclusive"`, ...), so deflate with a dictionary holding that vocabulary packs a
# 3 kB event into some 480 bytes where plain zlib leaves 1.1 kB. The same dictionary knows a trace's
# decision entries (reactor/jobs/trace/decisions.py): 1.5 kB of JSON in 130 bytes under the shipped
# rules.yaml, about 340 under rules of a site's own.
DICTIONARY_V1 = (
    b'{"kind":"decision","stage":"event as received","event_id":"ev_","event_type":"payment_failed","rule":nul'
    b'l,"action":null,"dry_run":false,"rules_version":"","reason":"no rule matched","blocked_by":null,"amount_'
    b'due":0,"currency":"USD","rules":[{"rule":"","action":"skip","matched":false,"decided":false,"skipped_by_'
    b'on":false,"conditions":[{"field":"invoice.amount_due","operator":"lte","expected":0,"actual":"0","held":'
    b'false,"note":null},{"field":"invoice.dunning_status","operator":"eq","expected":"exhausted","actual":nul'
    b'l,"held":true,"note":null}]},{"rule":"","action":"write_off","matched":true,"decided":true,"skipped_by_o'
    b'n":true,"conditions":[]}],"at":"2026-"}{"id":"ev_","occurred_at":0,"source":"scheduled_job","object":"ev'
    b'ent","api_version":"v2","event_type":"payment_failed","webhook_status":"scheduled","content":{"transacti'
    b'on":{"id":"txn_","customer_id":"cus_","subscription_id":"sub_","gateway_account_id":"gw_","payment_sourc'
    b'e_id":"pm_","payment_method":"card","gateway":"stripe","type":"payment","date":0,"exchange_rate":0,"amou'
    b'nt":0,"id_at_gateway":"ch_","status":"failure","error_code":"card_declined","error_text":"","updated_at"'
    b':0,"resource_version":0,"deleted":false,"object":"transaction","masked_card_number":"","currency_code":"'
    b'USD","base_currency_code":"USD","amount_unused":0,"linked_invoices":[{"invoice_id":"inv_","applied_amoun'
    b't":0,"applied_at":0,"invoice_date":0,"invoice_total":0,"invoice_status":"not_paid"}]},"invoice":{"id":"i'
    b'nv_","customer_id":"cus_","subscription_id":"sub_","status":"not_paid","dunning_status":"exhausted","cur'
    b'rency_code":"USD","base_currency_code":"USD","total":0,"amount_due":0,"net_term_days":0,"date":0,"genera'
    b'ted_at":0,"due_date":0,"updated_at":0,"dunning_attempts":[{"attempt":0,"created_at":0,"dunning_type":"au'
    b'to_collect","transaction_id":"txn_","txn_status":"failure","txn_amount":0}],"linked_payments":[{"txn_id"'
    b':"txn_","applied_amount":0,"applied_at":0,"txn_status":"failure","txn_date":0,"txn_amount":0}]},"custome'
    b'r":{"id":"cus_","first_name":"","last_name":"","email":"","auto_collection":"on","net_term_days":0,"allo'
    b'w_direct_debit":false,"created_at":0,"taxability":"taxable","updated_at":0,"pii_cleared":"active","chann'
    b'el":"web","resource_version":0,"deleted":false,"object":"customer","card_status":"valid","promotional_cr'
    b'edits":0,"refundable_credits":0,"excess_payments":0,"unbilled_charges":0,"preferred_currency_code":"USD"'
    b',"primary_payment_source_id":"pm_","payment_method":{"object":"payment_method","type":"card","reference_'
    b'id":"cus_","gateway":"stripe","gateway_account_id":"gw_","status":"valid"}},"subscription":{"id":"sub_",'
    b'"billing_period":0,"billing_period_unit":"month","customer_id":"cus_","status":"active","current_term_st'
    b'art":0,"current_term_end":0,"next_billing_at":0,"created_at":0,"started_at":0,"activated_at":0,"updated_'
    b'at":0,"has_scheduled_changes":false,"channel":"web","resource_version":0,"deleted":false,"object":"subsc'
    b'ription","currency_code":"USD","subscription_items":[{"item_price_id":"","item_type":"plan","quantity":0'
    b',"unit_price":0,"amount":0,"object":"subscription_item"}],"due_invoices_count":0,"due_since":0,"total_du'
    b'es":0,"mrr":0},"card":{"status":"valid","gateway":"stripe","gateway_account_id":"gw_","first_name":"","l'
    b'ast_name":"","iin":"","last4":"","card_type":"visa","funding_type":"credit","expiry_month":0,"expiry_yea'
    b'r":0,"object":"card","masked_number":"************0341","customer_id":"cus_","payment_source_id":"pm_"}}'
    b'}{"id":"ev_","occurred_at":0,"source":"scheduled_job","object":"event","api_version":"v2","content":{"su'
    b'bscription":{"id":"","customer_id":"","plan_id":"","plan_quantity":0,"plan_unit_price":0,"plan_amount":0'
    b',"billing_period":0,"billing_period_unit":"year","plan_free_quantity":0,"status":"cancelled","created_at'
    b'":0,"cancelled_at":0,"cancel_reason":"no_card","updated_at":0,"has_scheduled_changes":false,"resource_ve'
    b'rsion":0,"deleted":false,"object":"subscription","cancel_reason_code":"No Card","currency_code":"USD","d'
    b'ue_invoices_count":0,"mrr":0},"customer":{"id":"","company":"","auto_collection":"on","net_term_days":0,'
    b'"allow_direct_debit":false,"created_at":0,"taxability":"taxable","updated_at":0,"locale":"en","pii_clear'
    b'ed":"active","resource_version":0,"deleted":false,"object":"customer","card_status":"no_card","promotion'
    b'al_credits":0,"refundable_credits":0,"excess_payments":0,"unbilled_charges":0,"preferred_currency_code":'
    b'"USD"}},"event_type":"subscription_cancelled","webhook_status":"not_configured"}{"id":"ev_","occurred_at'
    b'":0,"source":"scheduled_job","object":"event","api_version":"v2","content":{"invoice":{"id":"","customer'
    b'_id":"","recurring":false,"status":"payment_due","price_type":"tax_exclusive","date":0,"due_date":0,"net'
    b'_term_days":0,"exchange_rate":0,"total":0,"amount_paid":0,"amount_adjusted":0,"write_off_amount":0,"cred'
    b'its_applied":0,"amount_due":0,"dunning_status":"in_progress","next_retry_at":0,"updated_at":0,"resource_'
    b'version":0,"deleted":false,"object":"invoice","first_invoice":true,"amount_to_collect":0,"round_off_amou'
    b'nt":0,"new_sales_amount":0,"has_advance_charges":false,"currency_code":"USD","base_currency_code":"USD",'
    b'"is_gifted":false,"term_finalized":true,"tax":0,"line_items":[{"id":"li_","date_from":0,"date_to":0,"uni'
    b't_amount":0,"quantity":0,"amount":0,"pricing_model":"per_unit","is_taxed":false,"tax_amount":0,"object":'
    b'"line_item","customer_id":"","description":"","entity_type":"charge_item_price","entity_id":"","tax_exem'
    b'pt_reason":"tax_not_configured","discount_amount":0,"item_level_discount_amount":0}],"sub_total":0,"link'
    b'ed_payments":[],"dunning_attempts":[],"applied_credits":[],"adjustment_credit_notes":[],"issued_credit_n'
    b'otes":[],"linked_orders":[],"billing_address":{"first_name":"","last_name":"","company":"","validation_s'
    b'tatus":"not_validated","object":"billing_address"}}},"event_type":"invoice_updated","webhook_status":"no'
    b't_configured"}{"id":"ev_","occurred_at":0,"source":"scheduled_job","object":"event","api_version":"v2","'
    b'content":{"transaction":{"id":"txn_","customer_id":"","subscription_id":"","gateway_account_id":"gw_","p'
    b'ayment_source_id":"pm_","payment_method":"card","gateway":"chargebee","type":"payment","date":0,"exchang'
    b'e_rate":0,"amount":0,"id_at_gateway":"cb_","status":"failure","error_code":"3001","error_text":"","updat'
    b'ed_at":0,"resource_version":0,"deleted":false,"object":"transaction","masked_card_number":"","currency_c'
    b'ode":"USD","base_currency_code":"USD","amount_unused":0,"linked_invoices":[{"invoice_id":"","applied_amo'
    b'unt":0,"applied_at":0,"invoice_date":0,"invoice_total":0,"invoice_status":"payment_due"}],"linked_refund'
    b's":[]},"invoice":{"id":"","customer_id":"","subscription_id":"","recurring":true,"status":"payment_due",'
    b'"price_type":"tax_exclusive","date":0,"due_date":0,"net_term_days":0,"exchange_rate":0,"total":0,"amount'
    b'_paid":0,"amount_adjusted":0,"write_off_amount":0,"credits_applied":0,"amount_due":0,"dunning_status":"i'
    b'n_progress","next_retry_at":0,"updated_at":0,"resource_version":0,"deleted":false,"object":"invoice","fi'
    b'rst_invoice":false,"amount_to_collect":0,"round_off_amount":0,"has_advance_charges":false,"currency_code'
    b'":"USD","base_currency_code":"USD","tax":0,"line_items":[{"id":"li_","date_from":0,"date_to":0,"unit_amo'
    b'unt":0,"quantity":0,"amount":0,"pricing_model":"flat_fee","is_taxed":false,"tax_amount":0,"object":"line'
    b'_item","subscription_id":"","customer_id":"","description":"","entity_type":"plan_item_price","entity_id'
    b'":"","tax_exempt_reason":"tax_not_configured","discount_amount":0,"item_level_discount_amount":0}],"sub_'
    b'total":0,"linked_payments":[{"txn_id":"txn_","applied_amount":0,"applied_at":0,"txn_status":"failure","t'
    b'xn_date":0,"txn_amount":0}],"applied_credits":[{"applied_amount":0,"applied_at":0,"cn_id":"","cn_reason_'
    b'code":"subscription_change","cn_date":0,"cn_status":"refunded"}],"adjustment_credit_notes":[],"issued_cr'
    b'edit_notes":[],"linked_orders":[],"billing_address":{"first_name":"","last_name":"","validation_status":'
    b'"not_validated","object":"billing_address"}},"customer":{"id":"","first_name":"","last_name":"","email":'
    b'"","auto_collection":"on","net_term_days":0,"allow_direct_debit":false,"created_at":0,"taxability":"taxa'
    b'ble","updated_at":0,"resource_version":0,"deleted":false,"object":"customer","card_status":"valid","prim'
    b'ary_payment_source_id":"pm_","payment_method":{"object":"payment_method","type":"card","reference_id":"t'
    b'ok_","gateway":"chargebee","gateway_account_id":"gw_","status":"valid"},"promotional_credits":0,"refunda'
    b'ble_credits":0,"excess_payments":0,"unbilled_charges":0,"preferred_currency_code":"USD"},"subscription":'
    b'{"id":"","customer_id":"","billing_period":0,"billing_period_unit":"month","status":"active","trial_star'
    b't":0,"trial_end":0,"current_term_start":0,"current_term_end":0,"next_billing_at":0,"created_at":0,"start'
    b'ed_at":0,"activated_at":0,"updated_at":0,"has_scheduled_changes":false,"resource_version":0,"deleted":fa'
    b'lse,"object":"subscription","currency_code":"USD","due_invoices_count":0,"due_since":0,"total_dues":0,"m'
    b'rr":0,"exchange_rate":0,"base_currency_code":"USD","subscription_items":[{"item_price_id":"","item_type"'
    b':"plan","quantity":0,"unit_price":0,"amount":0,"free_quantity":0,"object":"subscription_item"}]}},"event'
    b'_type":"payment_failed","webhook_status":"not_configured"}{"id":"ev_","occurred_at":0,"source":"schedule'
    b'd_job","object":"event","api_version":"v2","content":{"invoice":{"id":"","customer_id":"","recurring":fa'
    b'lse,"status":"payment_due","price_type":"tax_exclusive","date":0,"due_date":0,"net_term_days":0,"exchang'
    b'e_rate":0,"total":0,"amount_paid":0,"amount_adjusted":0,"write_off_amount":0,"credits_applied":0,"amount'
    b'_due":0,"dunning_status":"in_progress","next_retry_at":0,"updated_at":0,"resource_version":0,"deleted":f'
    b'alse,"object":"invoice","first_invoice":true,"amount_to_collect":0,"round_off_amount":0,"new_sales_amoun'
    b't":0,"has_advance_charges":false,"currency_code":"USD","base_currency_code":"USD","is_gifted":false,"ter'
    b'm_finalized":true,"tax":0,"line_items":[{"id":"li_","date_from":0,"date_to":0,"unit_amount":0,"quantity"'
    b':0,"amount":0,"pricing_model":"per_unit","is_taxed":false,"tax_amount":0,"object":"line_item","customer_'
    b'id":"","description":"","entity_type":"addon","entity_id":"","tax_exempt_reason":"tax_not_configured","d'
    b'iscount_amount":0,"item_level_discount_amount":0}],"sub_total":0,"linked_payments":[],"dunning_attempts"'
    b':[],"applied_credits":[],"adjustment_credit_notes":[],"issued_credit_notes":[],"linked_orders":[],"billi'
    b'ng_address":{"first_name":"","last_name":"","company":"","validation_status":"not_validated","object":"b'
    b'illing_address"}}},"event_type":"invoice_updated","webhook_status":"not_configured"}{"id":"ev_","occurre'
    b'd_at":0,"source":"scheduled_job","object":"event","api_version":"v2","content":{"transaction":{"id":"txn'
    b'_","customer_id":"","subscription_id":"","gateway_account_id":"gw_","payment_source_id":"pm_","payment_m'
    b'ethod":"card","gateway":"chargebee","type":"payment","date":0,"exchange_rate":0,"amount":0,"id_at_gatewa'
    b'y":"cb_","status":"failure","error_code":"3001","error_text":"","updated_at":0,"resource_version":0,"del'
    b'eted":false,"object":"transaction","masked_card_number":"","currency_code":"USD","base_currency_code":"U'
    b'SD","amount_unused":0,"linked_invoices":[{"invoice_id":"","applied_amount":0,"applied_at":0,"invoice_dat'
    b'e":0,"invoice_total":0,"invoice_status":"payment_due"}],"linked_refunds":[]},"invoice":{"id":"","custome'
    b'r_id":"","subscription_id":"","recurring":true,"status":"payment_due","price_type":"tax_exclusive","date'
    b'":0,"due_date":0,"net_term_days":0,"exchange_rate":0,"total":0,"amount_paid":0,"amount_adjusted":0,"writ'
    b'e_off_amount":0,"credits_applied":0,"amount_due":0,"dunning_status":"in_progress","next_retry_at":0,"upd'
    b'ated_at":0,"resource_version":0,"deleted":false,"object":"invoice","first_invoice":false,"amount_to_coll'
    b'ect":0,"round_off_amount":0,"has_advance_charges":false,"currency_code":"USD","base_currency_code":"USD"'
    b',"tax":0,"line_items":[{"id":"li_","date_from":0,"date_to":0,"unit_amount":0,"quantity":0,"is_taxed":fal'
    b'se,"tax_amount":0,"object":"line_item","subscription_id":"","amount":0,"description":"","entity_type":"p'
    b'lan","entity_id":"no_","tax_exempt_reason":"tax_not_configured","discount_amount":0,"item_level_discount'
    b'_amount":0}],"sub_total":0,"linked_payments":[{"txn_id":"txn_","applied_amount":0,"applied_at":0,"txn_st'
    b'atus":"failure","txn_date":0,"txn_amount":0}],"applied_credits":[{"applied_amount":0,"applied_at":0,"cn_'
    b'id":"","cn_reason_code":"subscription_change","cn_date":0,"cn_status":"refunded"}],"adjustment_credit_no'
    b'tes":[],"issued_credit_notes":[],"linked_orders":[],"billing_address":{"first_name":"","last_name":"","v'
    b'alidation_status":"not_validated","object":"billing_address"}},"customer":{"id":"","first_name":"","last'
    b'_name":"","email":"","auto_collection":"on","net_term_days":0,"allow_direct_debit":false,"created_at":0,'
    b'"taxability":"taxable","updated_at":0,"resource_version":0,"deleted":false,"object":"customer","card_sta'
    b'tus":"valid","primary_payment_source_id":"pm_","payment_method":{"object":"payment_method","type":"card"'
    b',"reference_id":"tok_","gateway":"chargebee","gateway_account_id":"gw_","status":"valid"},"promotional_c'
    b'redits":0,"refundable_credits":0,"excess_payments":0,"unbilled_charges":0,"preferred_currency_code":"USD'
    b'"},"subscription":{"id":"","customer_id":"","plan_id":"no_","plan_quantity":0,"plan_unit_price":0,"billi'
    b'ng_period":0,"billing_period_unit":"month","plan_free_quantity":0,"status":"active","trial_start":0,"tri'
    b'al_end":0,"current_term_start":0,"current_term_end":0,"next_billing_at":0,"created_at":0,"started_at":0,'
    b'"activated_at":0,"updated_at":0,"has_scheduled_changes":false,"resource_version":0,"deleted":false,"obje'
    b'ct":"subscription","currency_code":"USD","addons":[{"id":"data_","quantity":0,"unit_price":0,"object":"a'
    b'ddon"}],"due_invoices_count":0,"due_since":0,"total_dues":0,"mrr":0,"exchange_rate":0,"base_currency_cod'
    b'e":"USD"}},"event_type":"payment_failed","webhook_status":"not_configured"}'
    # the shipped rules.yaml's decision and a receipt, last: deflate reaches the nearest matches cheapest
    b'{"kind":"decision","stage":"event as received","event_id":"ev_","event_type":"payment_failed","rule"'
    b':null,"action":"none","dry_run":false,"rules_version":"","reason":"no rule matched","blocked_by":nul'
    b'l,"amount_due":0,"currency":"USD","rules":[{"rule":"protect-enterprise","action":"skip","matched":fa'
    b'lse,"decided":false,"skipped_by_on":false,"conditions":[{"field":"invoice.customer_id","operator":"s'
    b'tarts_with","expected":"ent_","actual":null,"held":false,"note":null},{"field":"customer.cf_segment"'
    b',"operator":"eq","expected":"enterprise","actual":null,"held":false,"note":"the field is missing or '
    b'null"}]},{"rule":"dunning-exhausted-small-balance","action":"write_off","matched":false,"decided":fa'
    b'lse,"skipped_by_on":false,"conditions":[{"field":"invoice.dunning_status","operator":"eq","expected"'
    b':"exhausted","actual":null,"held":false,"note":null},{"field":"invoice.status","operator":"in","expe'
    b'cted":"[not_paid, payment_due]","actual":null,"held":true,"note":null},{"field":"invoice.amount_due"'
    b',"operator":"lte","expected":"{USD: 25, EUR: 20, GBP: 20, JPY: 3000}","actual":null,"held":false,"no'
    b'te":null}]},{"rule":"long-overdue-tiny","action":"write_off","matched":false,"decided":false,"skippe'
    b'd_by_on":false,"conditions":[{"field":"days_overdue","operator":"gte","expected":"90","actual":null,'
    b'"held":true,"note":null},{"field":"invoice.amount_due","operator":"lte","expected":"5","actual":null'
    b',"held":false,"note":null}]}],"at":"2026-"}{"kind":"receipt","at":"2026-","event_id":"ev_","event_ty'
    b'pe":"payment_failed","resource_version":0,"status":"queued"}'
)
"""Chargebee's envelope (ids cut to their prefixes, numbers 0; built from the shapes of
tests/fixtures/chargebee/ and the sandbox's demo event), then a decision under the shipped rules and
a receipt, as the trace stores them; frozen."""

DICTIONARY_SMALL_V2 = (
    b'{"kind":"receipt","at":"2026-11-27T00:00:00.000+00:00","event_id":"ev_","event_type":"invoice_updated",'
    b'"resource_version":0,"status":"duplicate"}{"kind":"receipt","at":"2026-","event_id":"ev_",'
    b'"event_type":"payment_failed","resource_version":null,"status":"queued"}'
)
"""A receipt's vocabulary, for values under SMALL bytes; frozen."""


@dataclass(frozen=True)
class Dictionary:
    version: int
    text: bytes
    window_bits: int  # the deflate window: the dictionary and a value must fit for full effect
    mem_level: int


# A dictionary, once shipped, never changes: values packed with it stay in Redis (events 30 days,
# trace entries 400); a better one gets the next version byte, and every one shipped is kept for
# reading (_READABLE).
ENVELOPE = Dictionary(1, DICTIONARY_V1, 14, 7)
RECEIPT = Dictionary(2, DICTIONARY_SMALL_V2, 9, 1)
_READABLE = {d.version: d.text for d in (ENVELOPE, RECEIPT)}
_local = threading.local()


class UnpackError(ValueError):
    """A value with the mark that does not unpack: another version's dictionary, or damage."""


def _compressor(dictionary: Dictionary) -> zlib._Compress:
    """A compressor primed with the dictionary, one per thread; each value packs from a copy."""
    primed = getattr(_local, f"v{dictionary.version}", None)
    if primed is None:
        primed = zlib.compressobj(
            LEVEL,
            zlib.DEFLATED,
            -dictionary.window_bits,
            dictionary.mem_level,
            zlib.Z_DEFAULT_STRATEGY,
            dictionary.text,
        )
        setattr(_local, f"v{dictionary.version}", primed)
    return primed.copy()


def pack(data: bytes) -> bytes:
    """`data` packed for storage."""
    dictionary = RECEIPT if len(data) < SMALL else ENVELOPE
    compressor = _compressor(dictionary)
    return MARK + bytes((dictionary.version,)) + compressor.compress(data) + compressor.flush()


def unpack(stored: bytes) -> bytes:
    """What `pack` was given; a value without the mark (stored unpacked) is returned as it is."""
    if not stored.startswith(MARK):  # the JSON releases before this one stored (kept up to 30 days, traces 400)
        return stored
    dictionary = _READABLE.get(stored[1]) if len(stored) > 1 else None
    if dictionary is None:
        raise UnpackError("a packed value of an unknown dictionary version (stored by a newer release?)")
    decompressor = zlib.decompressobj(-15, zdict=dictionary)
    try:
        data = decompressor.decompress(stored[2:]) + decompressor.flush()
    except zlib.error as exc:
        raise UnpackError(f"a packed value does not unpack: {exc}") from None
    if not decompressor.eof:
        raise UnpackError("a packed value is cut short")
    return data
