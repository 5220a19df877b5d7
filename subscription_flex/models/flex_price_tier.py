from odoo import fields, models


class FlexPriceTier(models.Model):
    _name = "flex.price.tier"
    _description = "Subscription Price Tier"
    _order = "price_id, open_ended, up_to, id"

    price_id = fields.Many2one("flex.price", required=True, ondelete="cascade", index=True)
    currency_id = fields.Many2one(related="price_id.currency_id")
    up_to = fields.Float(
        digits="Product Unit of Measure",
        help="Inclusive upper bound of the tier, in billable units.",
    )
    open_ended = fields.Boolean(string="And Beyond", help="The last tier: no upper bound.")
    unit_price = fields.Float(digits="Subscription Unit Price", required=True)
    flat_fee = fields.Monetary(currency_field="currency_id")

    _sql_constraints = [
        (
            "tier_not_negative",
            "CHECK(up_to >= 0 AND unit_price >= 0 AND flat_fee >= 0)",
            "Tier bounds and prices cannot be negative.",
        ),
    ]
