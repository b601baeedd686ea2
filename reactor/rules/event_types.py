"""Chargebee event types a rule may name in `on:`.

Generous on purpose: every event whose content can carry an invoice, or a resource a rule might
reasonably look at next to one (subscription, customer, transaction, credit note, card). Anything
else in `on:` is almost certainly a typo, and a typo there would silently disable a rule, so the
loader refuses it with a did-you-mean.
"""

from __future__ import annotations

KNOWN_EVENT_TYPES: frozenset[str] = frozenset(
    {
        # invoices
        "invoice_generated",
        "invoice_generated_with_backdating",
        "invoice_updated",
        "invoice_deleted",
        "pending_invoice_created",
        "pending_invoice_updated",
        "invoice_installments_created",
        "invoice_installment_updated",
        # payments and dunning
        "payment_failed",
        "payment_succeeded",
        "payment_initiated",
        "payment_refunded",
        "refund_initiated",
        "payment_due_reminder",
        "dunning_updated",
        "payment_schedules_created",
        "payment_schedules_updated",
        "payment_schedule_scheme_created",
        "payment_intent_created",
        "payment_intent_updated",
        # transactions
        "transaction_created",
        "transaction_updated",
        "transaction_deleted",
        # credit notes
        "credit_note_created",
        "credit_note_created_with_backdating",
        "credit_note_updated",
        "credit_note_deleted",
        # subscriptions
        "subscription_created",
        "subscription_created_with_backdating",
        "subscription_started",
        "subscription_activated",
        "subscription_activated_with_backdating",
        "subscription_changed",
        "subscription_changed_with_backdating",
        "subscription_cancelled",
        "subscription_cancellation_scheduled",
        "subscription_scheduled_cancellation_removed",
        "subscription_cancellation_reminder",
        "subscription_reactivated",
        "subscription_reactivated_with_backdating",
        "subscription_renewed",
        "subscription_renewal_reminder",
        "subscription_paused",
        "subscription_pause_scheduled",
        "subscription_resumed",
        "subscription_resumption_scheduled",
        "subscription_deleted",
        "subscription_trial_end_reminder",
        "subscription_trial_extended",
        "subscription_changes_scheduled",
        "subscription_scheduled_changes_removed",
        "subscription_shipping_address_updated",
        "subscription_advance_invoice_schedule_added",
        "subscription_advance_invoice_schedule_updated",
        "subscription_advance_invoice_schedule_removed",
        # customers and cards (content also carries the customer's invoice on some events)
        "customer_created",
        "customer_changed",
        "customer_deleted",
        "customer_moved_in",
        "customer_moved_out",
        "card_added",
        "card_updated",
        "card_expired",
        "card_expiry_reminder",
        "card_deleted",
        "payment_source_added",
        "payment_source_updated",
        "payment_source_deleted",
        "payment_source_expired",
        "payment_source_expiring",
        # orders, quotes and unbilled charges
        "order_created",
        "order_updated",
        "order_cancelled",
        "order_delivered",
        "order_returned",
        "order_ready_to_process",
        "order_ready_to_ship",
        "order_deleted",
        "quote_created",
        "quote_updated",
        "quote_deleted",
        "unbilled_charges_created",
        "unbilled_charges_deleted",
        "unbilled_charges_voided",
        "unbilled_charges_invoiced",
        # offline payment and write-off adjacent
        "virtual_bank_account_added",
        "virtual_bank_account_updated",
        "promotional_credits_added",
        "promotional_credits_deducted",
        "authorization_succeeded",
        "authorization_voided",
        # the reactor's own: an invoice found by `reactor sweep` (no webhook); see SWEEP_EVENT_TYPE
        "sweep",
    }
)

SWEEP_EVENT_TYPE = "sweep"
"""The event type of the envelope `reactor sweep` builds for each invoice it lists. A rule with an
`on:` filter acts on swept invoices only if it lists `sweep`; a rule without `on:` acts on them too."""
