from odoo import api, fields, models
from odoo.tools import format_date

from ..core.money import line_subtotal


class FlexSubscriptionLine(models.Model):
    _name = "flex.subscription.line"
    _description = "Subscription Line"
    _inherit = ["analytic.mixin"]
    _order = "subscription_id, sequence, id"
    _check_company_auto = True

    subscription_id = fields.Many2one(
        "flex.subscription", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="subscription_id.company_id", store=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id", store=True)
    sequence = fields.Integer(default=10)
    product_id = fields.Many2one(
        "product.product",
        required=True,
        check_company=True,
        domain="[('flex_is_subscription', '=', True)]",
    )
    product_uom_id = fields.Many2one(
        "uom.uom", compute="_compute_product_uom_id", store=True, readonly=False, precompute=True
    )
    name = fields.Char(string="Description")
    product_metered = fields.Boolean(related="product_id.flex_metered")
    quantity = fields.Float(default=1.0, digits="Product Unit of Measure", required=True)
    # Not Monetary: a price version of 14,301.643 JPY is billed as such (an invoice
    # line's unit price has the "Product Price" precision), so prorations of this line
    # must start from that price, not from the price rounded to the currency.
    price_unit = fields.Float(
        compute="_compute_price_unit",
        store=True,
        readonly=False,
        precompute=True,
        digits="Product Price",
    )
    price_overridden = fields.Boolean(
        string="Custom Price",
        help="Keep this price: price versions of the plan do not apply to this line.",
    )
    discount = fields.Float(string="Discount (%)", digits="Discount", default=0.0)
    tax_ids = fields.Many2many(
        "account.tax",
        string="Taxes",
        compute="_compute_tax_ids",
        store=True,
        readonly=False,
        precompute=True,
        check_company=True,
        domain="[('type_tax_use', '=', 'sale')]",
        context={"active_test": False},
        help="Taxes of this line on every invoice, credit note and proration. The "
        "product's sales taxes mapped by the fiscal position by default, as on a sales "
        "order line; taxes set by hand stay until the product or the fiscal position "
        "changes.",
    )
    terms_start = fields.Date(
        copy=False,
        readonly=True,
        help="Day the current quantity and price took effect (set by changes). In-arrears "
        "periods bill each set of terms for the days it was in force.",
    )
    price_subtotal = fields.Monetary(
        compute="_compute_price_subtotal", store=True, currency_field="currency_id"
    )

    _sql_constraints = [
        ("quantity_positive", "CHECK(quantity >= 0)", "A quantity cannot be negative."),
        (
            "discount_range",
            "CHECK(discount >= 0 AND discount <= 100)",
            "A discount is between 0 and 100%.",
        ),
    ]

    @api.depends("product_id")
    def _compute_product_uom_id(self):
        for line in self:
            line.product_uom_id = line.product_id.uom_id

    @api.depends("product_id", "subscription_id.fiscal_position_id", "subscription_id.company_id")
    def _compute_tax_ids(self):
        for line in self:
            if not line.product_id or not line.subscription_id:
                line.tax_ids = False
                continue
            line.tax_ids = line.subscription_id._product_taxes(line.product_id)

    @api.depends("product_id", "subscription_id.plan_id", "subscription_id.currency_id")
    def _compute_price_unit(self):
        for line in self:
            if line.price_overridden and line.price_unit:
                continue
            sub = line.subscription_id
            day = sub.next_period_start or sub.start_date or fields.Date.context_today(line)
            line.price_unit = line._lookup_price(day)

    @api.depends("price_unit", "quantity", "discount", "currency_id", "product_id.flex_metered")
    def _compute_price_subtotal(self):
        for line in self:
            if line.product_metered:
                # Billed from usage: no fixed amount per period.
                line.price_subtotal = 0.0
                continue
            decimals = line.currency_id.decimal_places if line.currency_id else 2
            line.price_subtotal = float(
                line_subtotal(line.price_unit, line.quantity, line.discount, decimals)
            )

    @api.onchange("price_unit")
    def _onchange_price_unit(self):
        """A price typed by hand is a custom price: price versions must not replace it."""
        sub = self.subscription_id
        if not self.product_id or self.price_overridden or self.product_metered:
            return
        day = sub.next_period_start or sub.start_date or fields.Date.context_today(self)
        if self.currency_id and self.currency_id.compare_amounts(
            self.price_unit, self._lookup_price(day)
        ):
            self.price_overridden = True

    def _lookup_price(self, day):
        """Price version valid on ``day``; the product's sales price (converted) when the
        plan has none for this product and currency."""
        self.ensure_one()
        sub = self.subscription_id
        if not self.product_id:
            return 0.0
        company = sub.company_id or self.env.company
        return self.env["flex.price"]._get_unit_price(
            sub.plan_id, self.product_id, sub.currency_id or company.currency_id, company, day
        )

    def _refresh_price(self, day):
        for line in self.filtered(
            lambda line: not line.price_overridden and not line.subscription_id.grandfathered
        ):
            line.price_unit = line._lookup_price(day)

    def _flex_renewal_price(self, day):
        """Unit price of this line in a term starting ``day``: a custom or grandfathered
        price stays, the others take the plan's version valid that day."""
        self.ensure_one()
        sub = self.subscription_id
        if self.price_overridden or sub.grandfathered:
            return self.price_unit
        return sub._price_for(sub.plan_id, self.product_id, day)

    def _get_invoice_label(self, period):
        self.ensure_one()
        label = self.name or self.product_id.display_name
        return self.env._(
            "%(label)s (%(start)s - %(end)s)",
            label=label,
            start=format_date(self.env, period.start),
            end=format_date(self.env, period.last_day),
        )

    def _get_taxes(self):
        self.ensure_one()
        return self.tax_ids

    def _get_income_account(self, journal):
        self.ensure_one()
        return self.subscription_id._product_income_account(self.product_id, journal)
