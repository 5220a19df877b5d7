from psycopg2.extras import execute_values

from odoo import api, fields, models

from ..core import sepa

SEPA_RISKS = [
    ("dispute", "Disputed"),
    ("returned", "Returned, on hold"),
    ("retry", "Returned, retried"),
    ("unsettled", "Not settled after the return period"),
    ("no_mandate", "Overdue, no valid mandate"),
]


class AccountMove(models.Model):
    _inherit = "account.move"

    flex_sepa_prenotified = fields.Boolean(string="Debit Pre-notified", copy=False, readonly=True)
    flex_sepa_retry_date = fields.Date(
        string="Debit Retry Not Before",
        copy=False,
        readonly=True,
        help="After a returned debit, the next one is collected on this day at the earliest.",
    )
    flex_sepa_hold = fields.Selection(
        [
            ("mandate", "new mandate needed"),
            ("dispute", "dispute"),
            ("manual", "left to the accountant"),
        ],
        string="Direct Debit Hold",
        copy=False,
        help="Not collected again until this is cleared (a new valid mandate clears "
        "'new mandate needed').",
    )
    flex_sepa_return_ids = fields.One2many("flex.sepa.return", "invoice_id", string="Debit Returns")
    flex_sepa_risk = fields.Selection(
        SEPA_RISKS, string="Direct Debit Risk", copy=False, readonly=True, index=True
    )
    flex_sepa_risk_date = fields.Date(string="At Risk Since", copy=False, readonly=True)

    def _get_invoice_in_payment_state(self):
        """Community shows an invoice *Paid* as soon as a payment is reconciled with it;
        a direct debit can still come back for days (returns up to D+5 business days,
        refunds for 8 weeks). Invoices of direct-debit subscriptions stay *In payment*
        until the bank statement matches their payment (as Odoo Enterprise shows all)."""
        if self.flex_subscription_id.payment_method == "sepa":
            return "in_payment"
        return super()._get_invoice_in_payment_state()

    def action_flex_sepa_release(self):
        """The accountant lets a held invoice be collected again."""
        self.write({"flex_sepa_hold": False})
        self._flex_sepa_update_risk()
        return True

    # ------------------------------------------------------------------ at risk

    @api.model
    def _flex_sepa_risk_domain(self):
        return [
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
            ("flex_subscription_id.payment_method", "=", "sepa"),
            "|",
            ("payment_state", "in", ("not_paid", "partial", "in_payment")),
            ("flex_sepa_risk", "!=", False),
        ]

    @api.model
    def _flex_sepa_update_risk(self, invoices=None):
        """Which direct-debit invoices are at risk, as of today: disputed, returned and
        held, returned and retried, in process past the return period (D+5 TARGET2
        business days Core, D+2 B2B), or overdue without a valid mandate. All of them
        (the daily cron), or ``invoices`` (after a bank file)."""
        today = fields.Date.context_today(self)
        domain = self._flex_sepa_risk_domain()
        if invoices is not None:
            domain = [("id", "in", invoices.ids), *domain]
        invoices = self.search(domain)
        if not invoices:
            return invoices
        last_line = {}
        for line in self.env["flex.sepa.batch.line"].search(
            [
                ("invoice_id", "in", invoices.ids),
                ("excluded", "=", False),
                ("state", "!=", "draft"),
            ],
            order="id",
        ):
            last_line[line.invoice_id.id] = line
        returned = set(
            self.env["flex.sepa.return"]
            .search([("invoice_id", "in", invoices.ids), ("technical", "=", False)])
            .invoice_id.ids
        )
        changes = [
            (invoice.id, risk or None, today if risk else None)
            for invoice in invoices
            for risk in [
                invoice._flex_sepa_risk(today, last_line.get(invoice.id), invoice.id in returned)
            ]
            if risk != invoice.flex_sepa_risk
        ]
        if changes:
            # Two technical columns nothing depends on, for thousands of invoices: one
            # UPDATE instead of Odoo's per-invoice write checks.
            execute_values(
                self.env.cr._obj,
                """
                UPDATE account_move m SET flex_sepa_risk = v.risk, flex_sepa_risk_date = v.day
                  FROM (VALUES %s) AS v(id, risk, day) WHERE m.id = v.id
                """,
                changes,
                template="(%s, %s, %s::date)",
                page_size=5000,
            )
            self.invalidate_model(["flex_sepa_risk", "flex_sepa_risk_date"])
        return self.browse([change[0] for change in changes])

    def _flex_sepa_risk(self, today, line, returned, hold=None):
        """The invoice's risk (see ``_flex_sepa_update_risk``); ``hold``: the hold it is
        about to get, when not yet written (``"none"`` for no hold)."""
        self.ensure_one()
        unpaid = self.payment_state in ("not_paid", "partial")
        hold = (hold if hold != "none" else False) if hold is not None else self.flex_sepa_hold
        if unpaid and hold == "dispute":
            return "dispute"
        if unpaid and hold:
            return "returned"
        if returned and (unpaid or (line and line.state == "collected")):
            return "retry"
        if line and line.state == "collected":
            days = sepa.RETURN_DAYS.get(line.mandate_id.scheme, 5)
            if sepa.add_business_days(line.collection_date, days) < today:
                return "unsettled"
        if (
            unpaid
            and self.invoice_date_due
            and self.invoice_date_due < today
            and not self.flex_subscription_id.sepa_mandate_id
        ):
            return "no_mandate"
        return False

    @api.model
    def _cron_flex_sepa_update_risk(self):
        self._flex_sepa_update_risk()
