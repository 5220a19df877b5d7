from odoo import fields, models


class FlexPlanLine(models.Model):
    _name = "flex.plan.line"
    _description = "Subscription Plan Template Line"
    _order = "plan_id, sequence, id"

    plan_id = fields.Many2one("flex.plan", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer(default=10)
    product_id = fields.Many2one(
        "product.product",
        required=True,
        domain="[('flex_is_subscription', '=', True)]",
    )
    name = fields.Char(string="Description", translate=True)
    quantity = fields.Float(default=1.0, digits="Product Unit of Measure", required=True)
    optional = fields.Boolean(
        help="Optional add-on: offered with the plan, not added to new subscriptions."
    )
