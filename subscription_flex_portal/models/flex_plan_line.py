from odoo import api, fields, models


class FlexPlanLine(models.Model):
    _inherit = "flex.plan.line"

    portal_editable = fields.Boolean(
        string="Quantity in Portal",
        help="Customers may change the quantity of this line in the portal, between the "
        "minimum and the maximum.",
    )
    portal_min_quantity = fields.Float(
        string="Portal Minimum", default=1.0, digits="Product Unit of Measure"
    )
    portal_max_quantity = fields.Float(
        string="Portal Maximum",
        digits="Product Unit of Measure",
        help="0: no maximum.",
    )

    @api.constrains("portal_min_quantity", "portal_max_quantity")
    def _check_portal_quantities(self):
        for line in self:
            if line.portal_min_quantity < 0 or line.portal_max_quantity < 0:
                raise models.ValidationError(
                    self.env._("Portal quantity limits cannot be negative.")
                )
            if line.portal_max_quantity and line.portal_max_quantity < line.portal_min_quantity:
                raise models.ValidationError(
                    self.env._(
                        "%(product)s: the portal maximum is below the minimum.",
                        product=line.product_id.display_name,
                    )
                )
