"""A change proposed as an upsell quotation (see ``sale_order.py``)."""

from datetime import timedelta
from decimal import Decimal

from odoo import fields, models
from odoo.exceptions import UserError
from odoo.tools import format_date

from ..core import proration
from ..core.money import round_money


class FlexSubscriptionChange(models.Model):
    _inherit = "flex.subscription.change"  # pylint: disable=consider-merging-classes-inherited

    source = fields.Selection(selection_add=[("sale", "Sales order")], ondelete={"sale": "cascade"})
    sale_order_ids = fields.One2many("sale.order", "flex_change_id", string="Quotations")

    def action_flex_create_quotation(self):
        """The change as a quotation whose lines are its proration preview; confirming
        the quotation applies the change."""
        self.ensure_one()
        if self.state != "draft":
            raise UserError(self.env._("This change was already confirmed or cancelled."))
        if self.change_type not in ("lines", "plan"):
            raise UserError(
                self.env._("Only changes of quantities, options or plan are sold on a quotation.")
            )
        order = self.sale_order_ids.filtered(lambda o: o.state != "cancel")[:1]
        if not order:
            sub = self.subscription_id
            vals = self._flex_quotation_vals()
            self.source = "sale"
            order = self.env["sale.order"].create(
                {**sub._flex_prepare_order_vals(), "flex_change_id": self.id, **vals}
            )
        return order._flex_open_action()

    def _flex_quotation_vals(self):
        """Lines and expiry of the upsell quotation. Its amounts are those of confirming
        the change now: they hold until the day the change takes effect (today for a
        change effective now), so the quotation expires after that day, and Odoo's
        portal no longer lets the customer sign it."""
        self.ensure_one()
        plan = self._plan()
        return {
            "validity_date": plan["effective_date"],
            "order_line": [
                fields.Command.create(vals) for vals in self._flex_quotation_lines_vals(plan)
            ],
        }

    def _flex_quotation_lines_vals(self, plan=None):
        """Order lines of the change as it would be confirmed now: a note, then one line
        per credit and charge of the preview (quantity 1, the amount as unit price, the
        taxes the invoice will have), so the quotation's totals are the preview's. A
        change with nothing to prorate shows its new terms at no charge. Each line carries
        its share of the change of MRR."""
        self.ensure_one()
        sub = self.subscription_id
        plan = plan or self._plan()
        preview = self._preview_from_plan(plan)
        currency = sub.currency_id
        decimals = currency.decimal_places
        day = plan["effective_date"]
        vals_list = [
            {
                "display_type": "line_note",
                "name": self.env._(
                    "%(change)s on %(sub)s, effective %(date)s.",
                    change=self.name,
                    sub=sub.name,
                    date=format_date(self.env, day),
                ),
            }
        ]
        priced = []
        arrears = sub.plan_id.invoicing_timing == "arrears"
        for item, line in zip(plan["items"], preview["lines"], strict=True):
            product = item["product"]
            if arrears:
                mrr = Decimal(0)  # in arrears the items bill the old terms' days
            else:
                months = (
                    plan["plan"] if item["kind"] == "charge" else sub.plan_id
                ).months_per_period()
                sign = 1 if item["kind"] == "charge" else -1
                mrr = (
                    sign
                    * proration.full_amount(self._terms(item), decimals)
                    / Decimal(repr(months))
                )
            priced.append(
                {
                    "product_id": product.id,
                    "name": line["label"],
                    "product_uom_qty": 1.0,
                    "product_uom": product.uom_id.id,
                    "price_unit": float(item["amount"]),
                    "technical_price_unit": float(item["amount"]),
                    "discount": 0.0,
                    "tax_id": [fields.Command.set(item["taxes"].ids)],
                    "flex_item_kind": item["kind"],
                    "flex_period_start": item["start"],
                    "flex_period_end": item["end"] - timedelta(days=1),
                    "flex_mrr_change": float(round_money(mrr, decimals)),
                }
            )
        if not priced:
            priced = self._flex_terms_lines_vals(plan, decimals)
        delta = preview["mrr_after"] - preview["mrr_before"]
        if priced:
            # Rounding (and in-arrears items) leave the rest of the change of MRR to the
            # first line, so the order's MRR is the preview's exactly.
            rest = delta - sum(Decimal(repr(vals["flex_mrr_change"])) for vals in priced)
            priced[0]["flex_mrr_change"] = float(Decimal(repr(priced[0]["flex_mrr_change"])) + rest)
        return vals_list + priced

    def _flex_terms_lines_vals(self, plan, decimals):
        """Lines at no charge that state the new terms of a change with no proration."""
        old, target = plan["old_lines"], plan["target"]
        old_months = Decimal(repr(self.subscription_id.plan_id.months_per_period()))
        new_months = Decimal(repr(plan["plan"].months_per_period()))
        vals_list = []
        for key in list(old) + [key for key in target if key not in old]:
            before, after = old.get(key), target.get(key)
            if (
                before
                and after
                and self._terms(before) == self._terms(after)
                and not plan["switch"]
            ):
                continue
            vals = after or before
            product = vals["product"]
            mrr = Decimal(0)
            if not product.flex_metered:
                if after:
                    mrr += proration.full_amount(self._terms(after), decimals) / new_months
                if before:
                    mrr -= proration.full_amount(self._terms(before), decimals) / old_months
            quantities = ["{:g}".format(v["quantity"]) if v else "0" for v in (before, after)]
            vals_list.append(
                {
                    "product_id": product.id,
                    "name": self.env._(
                        "%(product)s: %(before)s → %(after)s from %(date)s",
                        product=product.display_name,
                        before=quantities[0],
                        after=quantities[1],
                        date=format_date(self.env, plan["effective_date"]),
                    ),
                    "product_uom_qty": 1.0,
                    "product_uom": product.uom_id.id,
                    "price_unit": 0.0,
                    "technical_price_unit": 0.0,
                    "tax_id": [fields.Command.clear()],
                    "flex_mrr_change": float(round_money(mrr, decimals)),
                }
            )
        return vals_list
