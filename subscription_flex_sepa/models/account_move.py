from odoo import fields, models


class AccountMove(models.Model):
    _inherit = "account.move"

    flex_sepa_prenotified = fields.Boolean(string="Debit Pre-notified", copy=False, readonly=True)

    def _get_invoice_in_payment_state(self):
        """Community shows an invoice *Paid* as soon as a payment is reconciled with it;
        a direct debit can still come back for days (returns up to D+5 business days,
        refunds for 8 weeks). Invoices of direct-debit subscriptions stay *In payment*
        until the bank statement matches their payment (as Odoo Enterprise shows all)."""
        if self.flex_subscription_id.payment_method == "sepa":
            return "in_payment"
        return super()._get_invoice_in_payment_state()
