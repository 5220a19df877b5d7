"""Subscriptions sold in Sales.

Three kinds of orders (``flex_order_kind``):

- **new**: lines of subscription products carry a plan; confirming the order creates one
  subscription per plan (the order's start date, lines, prices, discounts, fiscal
  position, payment terms, salesperson and analytic distribution) and invoices its first
  period when it is due. The subscription engine bills every period, the first one
  included: the order lines are *invoiced by the subscription*, so Sales never invoices
  them a second time.
- **upsell**: made from a draft change of a running subscription; its lines are the
  change's proration preview (credit and charge per line, with their periods).
  Confirming applies the change exactly as confirming it directly would, once.
- **renewal**: a fixed term ending soon, with the price each line will have in the next
  term; confirming renews the term (and schedules the differences the salesperson made
  for the term's first day).
"""

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.http import request

ORDER_KINDS = [
    ("new", "New subscription"),
    ("upsell", "Upsell"),
    ("renewal", "Renewal"),
]


class SaleOrder(models.Model):
    _inherit = "sale.order"

    flex_start_date = fields.Date(
        string="Subscription Start",
        copy=False,
        help="First day of the subscriptions this order creates (the day it is confirmed "
        "when empty).",
    )
    flex_subscription_id = fields.Many2one(
        "flex.subscription",
        string="For Subscription",
        groups="subscription_flex.group_flex_user",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="The running subscription this upsell or renewal quotation is for.",
    )
    flex_created_subscription_ids = fields.One2many(
        "flex.subscription",
        "sale_order_id",
        string="Created Subscriptions",
        groups="subscription_flex.group_flex_user",
    )
    flex_subscription_count = fields.Integer(
        compute="_compute_flex_subscription_count", groups="subscription_flex.group_flex_user"
    )
    flex_change_id = fields.Many2one(
        "flex.subscription.change",
        string="Subscription Change",
        groups="subscription_flex.group_flex_user",
        readonly=True,
        copy=False,
        index="btree_not_null",
    )
    flex_renewal_term_end = fields.Date(
        string="Renews the Term Ending",
        readonly=True,
        copy=False,
        help="First day after the term this quotation renews.",
    )
    flex_order_kind = fields.Selection(
        ORDER_KINDS,
        string="Subscription Sale",
        compute="_compute_flex_order_kind",
        store=True,
    )
    flex_mrr = fields.Monetary(
        string="MRR Sold",
        compute="_compute_flex_mrr",
        store=True,
        help="Monthly recurring revenue this order adds (new subscriptions in full; "
        "upsells and renewals: the difference they make).",
    )

    @api.depends("flex_change_id", "flex_renewal_term_end", "order_line.flex_plan_id")
    def _compute_flex_order_kind(self):
        for order in self:
            if order.flex_change_id:
                order.flex_order_kind = "upsell"
            elif order.flex_renewal_term_end:
                order.flex_order_kind = "renewal"
            elif any(order.order_line.mapped("flex_plan_id")):
                order.flex_order_kind = "new"
            else:
                order.flex_order_kind = False

    @api.depends("order_line.flex_mrr")
    def _compute_flex_mrr(self):
        for order in self:
            order.flex_mrr = order.currency_id.round(sum(order.order_line.mapped("flex_mrr")))

    def _compute_flex_subscription_count(self):
        for order in self:
            order.flex_subscription_count = len(
                order.flex_created_subscription_ids | order.flex_subscription_id
            )

    # ---------------------------------------------------------------- confirm

    def action_confirm(self):
        # One confirmation at a time: a second click, a second tab or the portal at the
        # same moment waits for nothing and is retried by Odoo's request runner, then
        # finds the order confirmed ("not in a state requiring confirmation").
        if self.ids:
            self.env.cr.execute(
                "SELECT id FROM sale_order WHERE id IN %s FOR UPDATE NOWAIT", [tuple(self.ids)]
            )
        return super().action_confirm()

    def _action_confirm(self):
        res = super()._action_confirm()
        # sudo: confirming an order is the salesperson's right; what it starts, changes or
        # renews is done as Sales does its own invoicing, whatever subscription rights the
        # salesperson has. Each step checks the order's own data.
        for order in self.sudo():
            if order.flex_order_kind == "new":
                order._flex_create_subscriptions()
            elif order.flex_order_kind == "upsell":
                order._flex_apply_change()
            elif order.flex_order_kind == "renewal":
                order._flex_renew()
            order._flex_link_paid_transactions()
        return res

    def _flex_link_paid_transactions(self):
        """A quotation paid online (Sales confirms it when the payment is authorized or
        done): the invoices the subscription made for it at confirmation (the first
        period, the change's difference) are the transaction's, so the payment Odoo
        creates for it is reconciled with them and they show paid."""
        self.ensure_one()
        if not self.flex_order_kind:
            return
        invoices = self.invoice_ids.filtered(
            lambda move: move.move_type == "out_invoice" and move.state == "posted"
        )
        if not invoices:
            return
        for tx in self.transaction_ids.filtered(
            lambda tx: tx.state in ("authorized", "done") and not tx.payment_id
        ):
            tx.invoice_ids = [fields.Command.link(move.id) for move in invoices]

    def _flex_start_day(self):
        """Day the order's prices are for: the renewed term's, or the new subscription's
        first day."""
        self.ensure_one()
        return (
            self.flex_renewal_term_end
            or self.flex_start_date
            or self.env["flex.subscription"]._today()
        )

    def _flex_create_subscriptions(self):
        """One subscription per plan, with the order's terms; the first period is invoiced
        now when it is due (as the invoicing cron would, a moment later)."""
        self.ensure_one()
        start = self._flex_start_day()
        Subscription = self.env["flex.subscription"]
        subs = Subscription
        for plan, lines in self.order_line.filtered("flex_plan_id").grouped("flex_plan_id").items():
            if plan.company_id and plan.company_id != self.company_id:
                raise UserError(
                    self.env._("Plan %(plan)s belongs to another company.", plan=plan.display_name)
                )
            sub = Subscription.create(self._flex_prepare_subscription_vals(plan, lines, start))
            for order_line, sub_line in zip(lines, sub.line_ids, strict=True):
                order_line.flex_subscription_line_id = sub_line
            sub.action_confirm()
            subs |= sub
            sub.message_post_with_source(
                "mail.message_origin_link",
                render_values={"self": sub, "origin": self},
                subtype_xmlid="mail.mt_note",
            )
        today = self.env["flex.subscription"]._today()
        for sub in subs.filtered(lambda s: s.next_invoice_date and s.next_invoice_date <= today):
            # sudo: the invoicing cron's rights; a salesperson needs no accounting rights
            # to sell a subscription, as Sales invoices orders.
            sub.sudo()._create_recurring_invoices(today)
        return subs

    def _flex_prepare_subscription_vals(self, plan, lines, start):
        self.ensure_one()
        return {
            "partner_id": self.partner_invoice_id.id,
            "company_id": self.company_id.id,
            "currency_id": self.currency_id.id,
            "plan_id": plan.id,
            "start_date": start,
            "user_id": self.user_id.id,
            "fiscal_position_id": self.fiscal_position_id.id,
            "payment_term_id": self.payment_term_id.id,
            "sale_order_id": self.id,
            "line_ids": [
                fields.Command.create(line._flex_prepare_subscription_line_vals(plan, start))
                for line in lines
            ],
        }

    def _flex_apply_change(self):
        """Apply the change this upsell quotation proposes, if the quotation still says
        what the change would do today; a quotation that no longer does is refused, so
        the customer pays exactly what was agreed."""
        self.ensure_one()
        change = self.flex_change_id
        if change.state != "draft":
            raise UserError(
                self.env._(
                    "The change %(change)s of this quotation was already applied or cancelled.",
                    change=change.name,
                )
            )
        change.subscription_id._lock_for_change()
        quoted = self._flex_current_quote_vals()
        if self._flex_quote_lines_vals(change) != quoted:
            raise self._flex_outdated_error()
        with self.env.cr.savepoint():
            change.action_confirm()
            # What was applied (after invoicing any period due before the change) is
            # what was quoted, line by line, or nothing is.
            if change.state == "applied" and self._flex_items_vals(change.item_ids) != quoted:
                raise self._flex_outdated_error()
        self._flex_link_change_items(change)

    def _flex_outdated_error(self):
        # The portal confirms as superuser: who asked is the request's user.
        user = request.env.user if request and getattr(request, "env", None) else self.env.user
        if not user._is_internal():
            # The customer signing or paying online.
            return UserError(
                self.env._(
                    "This quotation is out of date: the subscription or its prices changed "
                    "since it was made, and nothing was changed or charged. Please ask "
                    "%(salesperson)s for an updated quotation.",
                    salesperson=self.user_id.name or self.company_id.name,
                )
            )
        return UserError(
            self.env._(
                "The subscription %(sub)s or its prices changed since this quotation was "
                "made: use Update Quotation, then confirm again.",
                sub=self.flex_change_id.subscription_id.name,
            )
        )

    def _flex_quote_key(self, product_id, kind, start, amount, tax_ids):
        """What an upsell line, a fresh preview's line or an applied item must agree on."""
        return (product_id, kind, start, self.currency_id.round(amount), tuple(sorted(tax_ids)))

    def _flex_items_vals(self, items):
        return [
            self._flex_quote_key(
                item.product_id.id, item.kind, item.period_start, item.amount, item.tax_ids.ids
            )
            for item in items.sorted("id")
        ]

    def _flex_current_quote_vals(self):
        """What the quotation's priced lines say, to compare with a fresh preview."""
        return [
            self._flex_quote_key(
                line.product_id.id,
                line.flex_item_kind,
                line.flex_period_start,
                line.price_unit,
                line.tax_id.ids,
            )
            for line in self.order_line.filtered("flex_item_kind")
        ]

    def _flex_quote_lines_vals(self, change):
        return [
            self._flex_quote_key(
                vals["product_id"],
                vals["flex_item_kind"],
                vals["flex_period_start"],
                vals["price_unit"],
                vals["tax_id"][0][2],
            )
            for vals in change._flex_quotation_lines_vals()
            if vals.get("flex_item_kind")
        ]

    def _flex_link_change_items(self, change):
        """The order lines show the change's document (or the next invoice that bills
        the items)."""
        lines = self.order_line.filtered("flex_item_kind")
        items = change.item_ids.sorted("id")
        for line, item in zip(lines, items, strict=False):
            line.flex_change_item_id = item
        self.env["account.move.line"].search(
            [("flex_change_item_id", "in", items.ids)]
        )._flex_link_sale_lines()

    def _flex_renew(self):
        self.ensure_one()
        sub = self.flex_subscription_id
        sub._lock_for_change()
        sub._flex_renew_from_order(self)

    def action_flex_update_quotation(self):
        """Recompute an upsell quotation from the change's preview today."""
        for order in self:
            if order.state not in ("draft", "sent") or not order.flex_change_id:
                raise UserError(self.env._("Only upsell quotations can be updated."))
            order.order_line.unlink()
            order.write(order.flex_change_id._flex_quotation_vals())
        return True

    def _action_cancel(self):
        res = super()._action_cancel()
        # The change an upsell quotation proposed is withdrawn with it.
        drafts = self.flex_change_id.filtered(lambda change: change.state == "draft")
        if drafts:
            drafts.write({"state": "cancelled"})
        return res

    def _flex_open_action(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "sale.order",
            "res_id": self.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }

    def action_view_flex_subscriptions(self):
        self.ensure_one()
        subs = self.flex_created_subscription_ids | self.flex_subscription_id
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "subscription_flex.flex_subscription_action"
        )
        if len(subs) == 1:
            action.update(views=[(False, "form")], res_id=subs.id)
        else:
            action["domain"] = [("id", "in", subs.ids)]
        return action
