"""The subscription's side of Sales: the order it came from, upsell and renewal
quotations (see ``sale_order.py``)."""

import logging
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_compare, format_date

from ..core import periods as P

_logger = logging.getLogger(__name__)


class FlexSubscription(models.Model):
    _inherit = "flex.subscription"  # pylint: disable=consider-merging-classes-inherited

    sale_order_id = fields.Many2one(
        "sale.order",
        string="Sales Order",
        readonly=True,
        copy=False,
        index="btree_not_null",
        groups="sales_team.group_sale_salesman",
        help="The order that sold this subscription.",
    )
    flex_sale_order_ids = fields.One2many(
        "sale.order",
        "flex_subscription_id",
        string="Upsell and Renewal Orders",
        groups="sales_team.group_sale_salesman",
    )
    flex_sale_order_count = fields.Integer(
        compute="_compute_flex_sale_order_count", groups="sales_team.group_sale_salesman"
    )

    def _compute_flex_sale_order_count(self):
        counts = dict(
            self.env["sale.order"]._read_group(
                [("flex_subscription_id", "in", self.ids)], ["flex_subscription_id"], ["__count"]
            )
        )
        for sub in self:
            sub.flex_sale_order_count = counts.get(sub, 0) + (1 if sub.sale_order_id else 0)

    # ---------------------------------------------------------------- actions

    def action_view_flex_sale_orders(self):
        self.ensure_one()
        orders = self.sale_order_id | self.flex_sale_order_ids
        action = self.env["ir.actions.act_window"]._for_xml_id("sale.action_orders")
        action["domain"] = [("id", "in", orders.ids)]
        action["context"] = {"create": False}
        return action

    def action_flex_new_quotation(self):
        """Open a draft change whose main button makes the upsell quotation."""
        action = self.action_open_change()
        action["name"] = self.env._("New Quotation for %(name)s", name=self.name)
        action["context"] = {**action["context"], "flex_quotation": True}
        return action

    def action_flex_renewal_quotation(self):
        self.ensure_one()
        return self._flex_renewal_order()._flex_open_action()

    # --------------------------------------------------------------- renewal

    def _flex_renewal_order(self):
        """The renewal quotation of the current term (made once: an open one is reused)."""
        self.ensure_one()
        plan = self.plan_id
        if plan.term_type != "fixed" or not self.term_end_date:
            raise UserError(self.env._("%(name)s has no fixed term to renew.", name=self.name))
        if self.state not in ("active", "paused", "to_close"):
            raise UserError(
                self.env._("%(name)s cannot be renewed in its current state.", name=self.name)
            )
        Order = self.env["sale.order"]
        existing = Order.search(
            [
                ("flex_subscription_id", "=", self.id),
                ("flex_renewal_term_end", "=", self.term_end_date),
                ("state", "!=", "cancel"),
            ],
            limit=1,
        )
        if existing:
            return existing
        term_end = self.term_end_date
        new_end = P.add_interval(term_end, plan.term_length, plan.term_unit)
        lines = [
            fields.Command.create(
                {
                    "display_type": "line_note",
                    "name": self.env._(
                        "Renewal of %(sub)s for the term from %(start)s to %(end)s.",
                        sub=self.name,
                        start=format_date(self.env, term_end),
                        end=format_date(self.env, new_end - timedelta(days=1)),
                    ),
                }
            )
        ]
        for line in self.line_ids:
            price = line._flex_renewal_price(term_end)
            lines.append(
                fields.Command.create(
                    {
                        "product_id": line.product_id.id,
                        "name": line.name
                        or line.product_id.get_product_multiline_description_sale(),
                        "product_uom_qty": line.quantity,
                        "product_uom": line.product_uom_id.id,
                        "price_unit": price,
                        "technical_price_unit": price,
                        "discount": line.discount,
                        "tax_id": [fields.Command.set(line.tax_ids.ids)],
                        "flex_plan_id": plan.id,
                        "flex_renewed_line_id": line.id,
                        "analytic_distribution": line.analytic_distribution,
                    }
                )
            )
        return Order.create(
            {
                **self._flex_prepare_order_vals(),
                "flex_renewal_term_end": term_end,
                "validity_date": term_end - timedelta(days=1),
                "order_line": lines,
            }
        )

    def _flex_prepare_order_vals(self):
        """Header of an upsell or renewal quotation: the subscription's customer and terms."""
        self.ensure_one()
        return {
            "partner_id": self.partner_id.id,
            "company_id": self.company_id.id,
            "pricelist_id": self._flex_pricelist().id,
            "fiscal_position_id": self.fiscal_position_id.id,
            "payment_term_id": self.payment_term_id.id,
            "user_id": (self.user_id or self.env.user).id,
            "origin": self.name,
            "flex_subscription_id": self.id,
        }

    def _flex_pricelist(self):
        """A pricelist in the subscription's currency (an order's currency is its
        pricelist's, or the company's without one): the customer's when it matches."""
        self.ensure_one()
        pricelist = self.partner_id.with_company(self.company_id).property_product_pricelist
        if pricelist.currency_id == self.currency_id:
            return pricelist
        pricelist = self.env["product.pricelist"].search(
            [
                ("currency_id", "=", self.currency_id.id),
                ("company_id", "in", (False, self.company_id.id)),
            ],
            limit=1,
        )
        if not pricelist and self.currency_id != self.company_id.currency_id:
            raise UserError(
                self.env._(
                    "Create a pricelist in %(currency)s to quote %(name)s.",
                    currency=self.currency_id.name,
                    name=self.name,
                )
            )
        return pricelist

    def _flex_renew_from_order(self, order):
        """Confirming a renewal quotation: the term runs one more term (unless it was
        renewed already), a cancellation asked for is withdrawn, and the lines of the
        quotation apply from the new term's first day where they differ."""
        self.ensure_one()
        if self.state not in ("active", "paused", "to_close"):
            raise UserError(
                self.env._("%(name)s is closed: it can no longer be renewed.", name=self.name)
            )
        self._flex_check_renewal_taxes(order)
        plan = self.plan_id
        term_end = order.flex_renewal_term_end
        if self.state == "to_close":
            self.action_undo_close()
        if self.term_end_date == term_end:
            new_end = P.add_interval(term_end, plan.term_length, plan.term_unit)
            vals = {"term_end_date": new_end}
            if not plan.auto_renew:
                vals["end_date"] = new_end
            self.write(vals)
            self.message_post(
                body=self.env._(
                    "Term renewed until %(date)s by %(order)s.",
                    date=format_date(self.env, new_end - timedelta(days=1)),
                    order=order.name,
                )
            )
        elif not self.term_end_date or self.term_end_date < term_end:
            raise UserError(
                self.env._("The term of %(name)s does not match this quotation.", name=self.name)
            )
        change = self._flex_renewal_change(order, term_end)
        if change:
            change.action_confirm()
        return change

    def _flex_check_renewal_taxes(self, order):
        """A renewal renews the lines' taxes as they are: a quotation taxing a line
        otherwise is refused rather than confirmed with taxes it would not bill."""
        self.ensure_one()
        for order_line in order.order_line.filtered(lambda line: not line.display_type):
            line = order_line.flex_renewed_line_id
            taxes = line.tax_ids if line else self._product_taxes(order_line.product_id)
            if order_line.tax_id != taxes:
                raise UserError(
                    self.env._(
                        "The taxes of %(product)s on this renewal quotation (%(quoted)s) are "
                        "not the subscription's (%(taxes)s): a renewal keeps them. Set them "
                        "back on the quotation, or change them on the subscription first.",
                        product=order_line.product_id.display_name,
                        quoted=", ".join(order_line.tax_id.mapped("name")) or "-",
                        taxes=", ".join(taxes.mapped("name")) or "-",
                    )
                )

    def _flex_renewal_change(self, order, term_end):
        """A draft change of the lines the renewal quotation sets otherwise than the
        subscription would bill them in the new term (``False`` when none)."""
        self.ensure_one()
        precision = self.currency_id.decimal_places
        commands = []
        quoted = order.order_line.filtered(lambda line: not line.display_type)
        for order_line in quoted:
            line = order_line.flex_renewed_line_id
            expected = line._flex_renewal_price(term_end) if line else None
            custom = expected is None or float_compare(
                order_line.price_unit, expected, precision_digits=precision
            )
            if (
                line
                and not custom
                and line.quantity == order_line.product_uom_qty
                and line.discount == order_line.discount
            ):
                continue
            commands.append(
                fields.Command.create(
                    {
                        "subscription_line_id": line.id,
                        "product_id": order_line.product_id.id,
                        "quantity": order_line.product_uom_qty,
                        "discount": order_line.discount,
                        "custom_price": bool(custom),
                        "price_unit": order_line.price_unit,
                    }
                )
            )
        for line in self.line_ids - quoted.flex_renewed_line_id:
            # Removed from the quotation: not renewed.
            commands.append(
                fields.Command.create({"subscription_line_id": line.id, "quantity": 0.0})
            )
        if not commands:
            return False
        today = self._today()
        return self.env["flex.subscription.change"].create(
            {
                "subscription_id": self.id,
                "change_type": "lines",
                "timing": "date" if term_end > today else "now",
                "date": term_end if term_end > today else False,
                "source": "sale",
                "note": self.env._("Renewal %(order)s", order=order.name),
                "line_ids": commands,
            }
        )

    @api.model
    def _cron_flex_renewal_quotations(self):
        """Renewal quotations for fixed terms ending within the plan's notice for them."""
        today = self._today()
        plans = self.env["flex.plan"].search(
            [("term_type", "=", "fixed"), ("renewal_quotation_days", ">", 0)]
        )
        created = self.env["sale.order"]
        for plan in plans:
            subs = self.search(
                [
                    ("plan_id", "=", plan.id),
                    ("state", "in", ("active", "paused", "to_close")),
                    ("term_end_date", ">", today),
                    ("term_end_date", "<=", today + timedelta(days=plan.renewal_quotation_days)),
                ]
            )
            done = {
                (order.flex_subscription_id.id, order.flex_renewal_term_end)
                for order in self.env["sale.order"].search(
                    [
                        ("flex_subscription_id", "in", subs.ids),
                        ("flex_renewal_term_end", "!=", False),
                    ]
                )
            }
            for sub in subs:
                if (sub.id, sub.term_end_date) in done:
                    continue  # one per term, even when the salesperson cancelled it
                try:
                    with self.env.cr.savepoint():
                        created |= sub.with_company(sub.company_id)._flex_renewal_order()
                except UserError as error:
                    _logger.warning("No renewal quotation for %s: %s", sub.name, error)
        if created:
            _logger.info("Renewal quotations: %s created", len(created))
        return created
