from odoo import api, fields, models


class ProductTemplate(models.Model):
    _inherit = "product.template"

    flex_is_subscription = fields.Boolean(
        string="Subscription Product",
        help="Can be sold on subscription plans and billed every period.",
    )
    flex_metered = fields.Boolean(
        string="Metered",
        help="Billed on reported usage, in arrears, instead of a fixed quantity.",
    )
    flex_aggregation = fields.Selection(
        [
            ("sum", "Sum of quantities"),
            ("max", "Maximum quantity"),
            ("count", "Number of events"),
            ("unique", "Number of unique values"),
            ("last", "Last value"),
        ],
        string="Usage Aggregation",
        default="sum",
        help="How a period's usage events make the billed quantity.",
    )
    flex_allow_corrections = fields.Boolean(
        string="Allow Corrections",
        help="Accept negative usage quantities (corrections of earlier events).",
    )
    flex_unit_label = fields.Char(string="Usage Unit", translate=True, help="e.g. API calls, GB")
    flex_subscription_count = fields.Integer(
        string="Subscriptions", compute="_compute_flex_subscription_count"
    )

    @api.depends_context("company")
    def _compute_flex_subscription_count(self):
        Line = self.env["flex.subscription.line"]
        if not Line.has_access("read"):
            self.flex_subscription_count = 0
            return
        groups = Line._read_group(
            [
                ("product_id.product_tmpl_id", "in", self.ids),
                ("subscription_id.state", "not in", ("draft", "closed")),
            ],
            ["product_id"],
            ["subscription_id:count_distinct"],
        )
        counts = {}
        for product, count in groups:
            counts[product.product_tmpl_id.id] = counts.get(product.product_tmpl_id.id, 0) + count
        for template in self:
            template.flex_subscription_count = counts.get(template.id, 0)

    def action_view_flex_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "subscription_flex.flex_subscription_action"
        )
        action["domain"] = [("line_ids.product_id.product_tmpl_id", "=", self.id)]
        return action
