from odoo import api, fields, models
from odoo.tools import float_is_zero

from ..core.money import line_subtotal

ITEM_KINDS = [("credit", "Credit"), ("charge", "Charge")]


class SaleOrderLine(models.Model):
    _inherit = "sale.order.line"

    flex_is_subscription = fields.Boolean(related="product_id.flex_is_subscription")
    flex_plan_id = fields.Many2one(
        "flex.plan",
        string="Plan",
        compute="_compute_flex_plan_id",
        store=True,
        readonly=False,
        precompute=True,
        check_company=True,
        help="Sold on this subscription plan: confirming the order starts the subscription, "
        "which bills every period (the first one included).",
    )
    flex_subscription_line_id = fields.Many2one(
        "flex.subscription.line",
        string="Subscription Line",
        groups="subscription_flex.group_flex_user",
        readonly=True,
        copy=False,
        index="btree_not_null",
    )
    flex_renewed_line_id = fields.Many2one(
        "flex.subscription.line",
        string="Renewed Line",
        groups="subscription_flex.group_flex_user",
        readonly=True,
        copy=False,
        help="The subscription line this renewal line continues.",
    )
    flex_item_kind = fields.Selection(ITEM_KINDS, string="Proration", readonly=True, copy=False)
    flex_change_item_id = fields.Many2one(
        "flex.subscription.change.item",
        string="Proration Item",
        groups="subscription_flex.group_flex_user",
        readonly=True,
        copy=False,
        index="btree_not_null",
    )
    flex_period_start = fields.Date(string="From", readonly=True, copy=False)
    flex_period_end = fields.Date(string="To", readonly=True, copy=False)
    flex_mrr_change = fields.Float(
        readonly=True,
        copy=False,
        help="Upsell lines: the change of monthly recurring revenue this line stands for.",
    )
    flex_mrr = fields.Monetary(
        string="MRR Sold",
        compute="_compute_flex_mrr",
        store=True,
        help="Monthly recurring revenue this line adds.",
    )

    @api.depends("product_id", "order_id.flex_change_id", "order_id.flex_subscription_id")
    def _compute_flex_plan_id(self):
        Price = self.env["flex.price"]
        for line in self:
            if (
                not line.product_id.flex_is_subscription
                or line.order_id.flex_change_id
                or line.display_type
            ):
                line.flex_plan_id = False
                continue
            if line.flex_plan_id or line.flex_renewed_line_id:
                continue
            if line.order_id.flex_subscription_id:
                line.flex_plan_id = line.order_id.flex_subscription_id.plan_id
                continue
            # The first plan (by sequence) that prices this product.
            price = Price.search(
                [
                    ("product_id", "=", line.product_id.id),
                    ("plan_id.active", "=", True),
                    "|",
                    ("plan_id.company_id", "=", False),
                    ("plan_id.company_id", "=", line.order_id.company_id.id),
                ],
                order="plan_id, date_start desc",
                limit=1,
            )
            line.flex_plan_id = price.plan_id

    @api.depends(
        "flex_plan_id",
        "price_unit",
        "product_uom_qty",
        "discount",
        "flex_mrr_change",
        "order_id.flex_change_id",
        "flex_renewed_line_id.price_subtotal",
        "product_id.flex_metered",
    )
    def _compute_flex_mrr(self):
        for line in self:
            currency = line.order_id.currency_id
            if line.display_type or not currency:
                line.flex_mrr = 0.0
            elif line.flex_item_kind or line.order_id.flex_change_id:
                line.flex_mrr = line.flex_mrr_change
            elif line.flex_plan_id and not line.product_id.flex_metered:
                monthly = (
                    float(
                        line_subtotal(
                            line.price_unit,
                            line.product_uom_qty,
                            line.discount,
                            currency.decimal_places,
                        )
                    )
                    / line.flex_plan_id.months_per_period()
                )
                if line.flex_renewed_line_id:
                    # sudo: a salesperson edits the quotation without subscription rights.
                    renewed = line.flex_renewed_line_id.sudo()
                    monthly -= (
                        renewed.price_subtotal / renewed.subscription_id.plan_id.months_per_period()
                    )
                line.flex_mrr = currency.round(monthly)
            else:
                line.flex_mrr = 0.0

    @api.depends("flex_plan_id")
    def _compute_price_unit(self):
        return super()._compute_price_unit()

    def _reset_price_unit(self):
        """A line on a plan takes the plan's price version valid on the start day."""
        self.ensure_one()
        price = None
        renewed = self.flex_renewed_line_id
        if renewed:
            price = renewed._flex_renewal_price(self.order_id.flex_renewal_term_end)
        elif self.flex_plan_id and self.product_id:
            price = self._flex_version_price()
        if price is None:
            return super()._reset_price_unit()
        self.update({"price_unit": price, "technical_price_unit": price})

    def _flex_version_price(self, day=None):
        """The plan's price for this product and the order's currency on ``day`` (the
        subscription's start), ``None`` when the plan has no version for it."""
        self.ensure_one()
        order = self.order_id
        day = day or order._flex_start_day()
        key = (self.flex_plan_id.id, self.product_id.id, order.currency_id.id, day)
        return self.env["flex.price"]._get_price_map([key])[key]

    def _flex_is_billed_by_subscription(self):
        self.ensure_one()
        return bool(
            not self.display_type
            and (
                self.flex_plan_id
                or self.flex_item_kind
                or self.order_id.flex_order_kind in ("upsell", "renewal")
            )
        )

    # The subscription engine bills these lines: nothing is left for Sales to invoice,
    # and the lines show as invoiced once the order is confirmed.

    @api.depends("flex_plan_id", "flex_item_kind")
    def _compute_qty_to_invoice(self):
        res = super()._compute_qty_to_invoice()
        for line in self:
            if line._flex_is_billed_by_subscription():
                line.qty_to_invoice = 0.0
        return res

    @api.depends("flex_plan_id", "flex_item_kind")
    def _compute_qty_invoiced(self):
        res = super()._compute_qty_invoiced()
        for line in self:
            if line._flex_is_billed_by_subscription():
                # Credit notes of a downgrade would count negative: the line is what the
                # subscription bills, in full, once its document exists.
                billed = any(inv_line.move_id.state != "cancel" for inv_line in line.invoice_lines)
                line.qty_invoiced = line.product_uom_qty if billed else 0.0
        return res

    @api.depends("flex_plan_id", "flex_item_kind")
    def _compute_invoice_status(self):
        res = super()._compute_invoice_status()
        for line in self:
            if line.state == "sale" and line._flex_is_billed_by_subscription():
                line.invoice_status = "invoiced"
        return res

    @api.depends("flex_plan_id", "flex_item_kind")
    def _compute_untaxed_amount_to_invoice(self):
        res = super()._compute_untaxed_amount_to_invoice()
        for line in self:
            if line._flex_is_billed_by_subscription():
                line.untaxed_amount_to_invoice = 0.0
        return res

    def _flex_prepare_subscription_line_vals(self, plan, start):
        self.ensure_one()
        product = self.product_id
        currency = self.order_id.currency_id
        version = self.env["flex.price"]._get_unit_price(
            plan, product, currency, self.order_id.company_id, start
        )
        default_name = product.get_product_multiline_description_sale()
        return {
            "product_id": product.id,
            "name": self.name if self.name and self.name != default_name else False,
            "quantity": self.product_uom_qty,
            "product_uom_id": self.product_uom.id,
            "price_unit": self.price_unit,
            # A price agreed on the order stays; the plan's price follows its versions.
            "price_overridden": not float_is_zero(
                self.price_unit - version, precision_digits=currency.decimal_places
            ),
            "discount": self.discount,
            # The order's taxes, as typed or mapped by its fiscal position.
            "tax_ids": [fields.Command.set(self.tax_id.ids)],
            "analytic_distribution": self.analytic_distribution,
        }
