from odoo import fields, models


class FlexPlan(models.Model):
    _inherit = "flex.plan"

    portal_switch_plan_ids = fields.Many2many(
        "flex.plan",
        "flex_plan_portal_switch_rel",
        "plan_id",
        "target_plan_id",
        string="Customers May Switch To",
        check_company=True,
        help="Plans a customer on this plan may choose in the portal, e.g. the same "
        "package billed yearly. Empty: no plan change from the portal.",
    )
    portal_cancel = fields.Selection(
        [
            ("none", "Not from the portal"),
            ("period_end", "At the end of the period"),
            ("now", "At the end of the period, or now with a refund"),
        ],
        string="Cancel from the Portal",
        default="period_end",
        required=True,
        help="How customers may cancel in the portal. The plan's minimum term and notice "
        "period always apply.",
    )
