from odoo import api, fields, models


class FlexSubscription(models.Model):
    _inherit = "flex.subscription"

    payment_method = fields.Selection(
        [("manual", "Manual"), ("sepa", "SEPA direct debit")],
        default="manual",
        required=True,
        tracking=True,
    )
    sepa_mandate_id = fields.Many2one(
        "flex.sepa.mandate",
        compute="_compute_sepa_mandate_id",
        string="SEPA Mandate",
        help="The customer's valid mandate that collects the invoices.",
    )

    @api.depends("payment_method", "partner_id", "company_id")
    def _compute_sepa_mandate_id(self):
        mandates = self.env["flex.sepa.mandate"].search(
            [
                ("partner_id", "in", self.partner_id.commercial_partner_id.ids),
                ("state", "=", "valid"),
            ],
            order="recurrence desc, signature_date desc, id desc",
        )
        best = {}  # (partner, company) -> first mandate in the order above
        for mandate in mandates:
            best.setdefault((mandate.partner_id.id, mandate.company_id.id), mandate)
        empty = self.env["flex.sepa.mandate"]
        for sub in self:
            key = (sub.partner_id.commercial_partner_id.id, sub.company_id.id)
            sub.sepa_mandate_id = best.get(key, empty) if sub.payment_method == "sepa" else empty
