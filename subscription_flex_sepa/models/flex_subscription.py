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
        for sub in self:
            sub.sepa_mandate_id = (
                next(
                    (
                        m
                        for m in mandates
                        if m.partner_id == sub.partner_id.commercial_partner_id
                        and m.company_id == sub.company_id
                    ),
                    False,
                )
                if sub.payment_method == "sepa"
                else False
            )
