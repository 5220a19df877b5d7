"""Change requests: seats, options, plan and period switches, cancellations.

A change is computed (:meth:`FlexSubscriptionChange._get_preview`) before anything is
written: the exact credit and charge per line, with dates, days, amounts and taxes, from
the pure-Python core (:mod:`..core.proration`). Confirming applies it atomically: the
subscription's lines and plan, the proration items (the audit trail of amounts), and the
invoice or credit note when the amounts are invoiced now. Changes dated in the future or
at the end of the period are *scheduled* and applied by a cron on their date, once.
"""

import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta
from decimal import Decimal

from psycopg2.errors import SerializationFailure

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import format_amount, format_date, mute_logger

from ..core import periods as P
from ..core import proration
from ..core.money import round_money

_logger = logging.getLogger(__name__)

PRORATION_MODES = [
    ("invoice", "Invoice now"),
    ("next_invoice", "Add to the next invoice"),
    ("none", "No proration (next period)"),
]
CHANGE_TYPES = [
    ("lines", "Quantities and options"),
    ("plan", "Change plan or billing period"),
    ("cancel_now", "Cancel now, refund the unused part"),
    ("cancel_end", "Cancel at the end of the period"),
    ("undo_cancel", "Undo the scheduled cancellation"),
]


class FlexSubscriptionChange(models.Model):
    _name = "flex.subscription.change"
    _description = "Subscription Change"
    _order = "id desc"
    _check_company_auto = True

    name = fields.Char(compute="_compute_name", store=True)
    subscription_id = fields.Many2one(
        "flex.subscription", required=True, ondelete="cascade", index=True, check_company=True
    )
    company_id = fields.Many2one(related="subscription_id.company_id", store=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id", store=True)
    partner_id = fields.Many2one(related="subscription_id.partner_id")
    current_plan_id = fields.Many2one(related="subscription_id.plan_id", string="Current Plan")
    change_type = fields.Selection(CHANGE_TYPES, required=True, default="lines")
    timing = fields.Selection(
        [("now", "Now"), ("date", "On a date"), ("period_end", "At the end of the period")],
        required=True,
        default="now",
    )
    date = fields.Date(string="On", help="Day the change takes effect (timing: on a date).")
    effective_date = fields.Date(
        readonly=True, copy=False, help="Day the change took (or takes) effect."
    )
    new_plan_id = fields.Many2one("flex.plan", check_company=True)
    proration_mode = fields.Selection(
        PRORATION_MODES,
        help="Leave empty to follow the plan (override for this change only).",
    )
    line_ids = fields.One2many("flex.subscription.change.line", "change_id", string="Lines")
    close_reason_id = fields.Many2one("flex.close.reason", string="Cancellation Reason")
    note = fields.Text()
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("scheduled", "Scheduled"),
            ("applied", "Applied"),
            ("cancelled", "Cancelled"),
        ],
        default="draft",
        required=True,
        readonly=True,
        copy=False,
        index=True,
    )
    source = fields.Selection(
        [("backend", "Back office"), ("portal", "Portal"), ("migration", "Plan migration")],
        default="backend",
        required=True,
        readonly=True,
    )
    requested_by_id = fields.Many2one(
        "res.users", default=lambda self: self.env.user, readonly=True, copy=False
    )
    requested_on = fields.Datetime(default=fields.Datetime.now, readonly=True, copy=False)
    applied_by_id = fields.Many2one("res.users", readonly=True, copy=False)
    applied_on = fields.Datetime(readonly=True, copy=False)
    item_ids = fields.One2many(
        "flex.subscription.change.item", "change_id", string="Proration", readonly=True
    )
    move_id = fields.Many2one("account.move", string="Document", readonly=True, copy=False)
    amount_untaxed = fields.Monetary(readonly=True, copy=False)
    amount_tax = fields.Monetary(readonly=True, copy=False)
    amount_total = fields.Monetary(readonly=True, copy=False)
    old_terms = fields.Json(readonly=True, copy=False)
    new_terms = fields.Json(readonly=True, copy=False)
    terms_summary = fields.Text(compute="_compute_terms_summary")
    preview_html = fields.Html(compute="_compute_preview_html", sanitize=False)

    # ------------------------------------------------------------------ computes

    @api.depends("change_type", "new_plan_id", "line_ids.quantity", "line_ids.product_id")
    def _compute_name(self):
        types = dict(CHANGE_TYPES)
        for change in self:
            label = types.get(change.change_type, "")
            if change.change_type == "plan" and change.new_plan_id:
                label = self.env._("Switch to %(plan)s", plan=change.new_plan_id.display_name)
            elif change.change_type == "lines" and change.line_ids:
                label = ", ".join(
                    f"{line.product_id.display_name} → {line.quantity:g}"
                    for line in change.line_ids
                )
            change.name = label

    @api.depends("old_terms", "new_terms")
    def _compute_terms_summary(self):
        for change in self:
            if not change.old_terms:
                change.terms_summary = False
                continue
            change.terms_summary = "\n".join(
                [
                    self.env._("Before: %(terms)s", terms=self._describe_terms(change.old_terms)),
                    self.env._("After: %(terms)s", terms=self._describe_terms(change.new_terms)),
                ]
            )

    @api.model
    def _describe_terms(self, terms):
        if not terms:
            return "-"
        lines = "; ".join(
            f"{line['product']} {line['quantity']:g} × {line['price_unit']}"
            + (f" -{line['discount']:g}%" if line.get("discount") else "")
            for line in terms.get("lines", [])
        )
        return f"{terms.get('plan')} ({terms.get('period')}): {lines or '-'}"

    @api.depends_context("flex_today")
    @api.depends(
        "change_type",
        "timing",
        "date",
        "new_plan_id",
        "proration_mode",
        "line_ids.quantity",
        "line_ids.product_id",
        "line_ids.price_unit",
        "line_ids.custom_price",
        "line_ids.discount",
        "state",
    )
    def _compute_preview_html(self):
        for change in self:
            if change.state != "draft" or not change.subscription_id:
                change.preview_html = change._render_items_html() if change.item_ids else False
                continue
            try:
                preview = change._get_preview()
            except (UserError, ValidationError) as error:
                change.preview_html = self.env["ir.qweb"]._render(
                    "subscription_flex.change_preview_error", {"message": error.args[0]}
                )
                continue
            change.preview_html = self.env["ir.qweb"]._render(
                "subscription_flex.change_preview", {"preview": preview, "change": change}
            )

    def _render_items_html(self):
        return self.env["ir.qweb"]._render(
            "subscription_flex.change_preview",
            {"preview": self._preview_from_items(), "change": self},
        )

    # ------------------------------------------------------------ constraints

    @api.constrains("change_type", "new_plan_id", "subscription_id")
    def _check_plan(self):
        for change in self:
            if change.change_type == "plan" and not change.new_plan_id:
                raise ValidationError(self.env._("Choose the new plan."))

    # ------------------------------------------------------------------ helpers

    def _today(self):
        return self.env["flex.subscription"]._today()

    def _requested_day(self):
        """Day asked for, before the plan's rules move it (period end, commitment...)."""
        self.ensure_one()
        sub = self.subscription_id
        today = self._today()
        if self.timing == "date":
            if not self.date:
                raise UserError(self.env._("Choose the day the change takes effect."))
            if self.date < today:
                raise UserError(
                    self.env._(
                        "A change cannot take effect in the past (%(date)s).",
                        date=format_date(self.env, self.date),
                    )
                )
            return self.date
        if self.timing == "period_end":
            return sub._current_period_end(today)
        return today

    def _get_mode(self):
        self.ensure_one()
        return self.proration_mode or self.subscription_id.plan_id.proration_mode

    def _target_plan(self):
        self.ensure_one()
        if self.change_type == "plan":
            return self.new_plan_id
        return self.subscription_id.plan_id

    def _period_switch(self):
        """``None``, ``"longer"`` or ``"shorter"``: how the billing period changes."""
        self.ensure_one()
        old, new = self.subscription_id.plan_id, self._target_plan()
        if (old.billing_interval, old.billing_unit) == (new.billing_interval, new.billing_unit):
            return None
        return "longer" if new.months_per_period() > old.months_per_period() else "shorter"

    def _get_target_lines(self, price_day):
        """New lines of the subscription: ``OrderedDict(key -> dict)``; keys of kept lines
        are the subscription line ids, new lines get ``("new", n)`` or ``("tmpl", n)``."""
        self.ensure_one()
        if self.change_type == "cancel_now":
            return OrderedDict()
        target = self._current_lines()
        if self.change_type == "plan":
            self._apply_new_plan(target, price_day)
        self._apply_change_lines(target, price_day)
        if not target:
            raise UserError(
                self.env._("A subscription keeps at least one line; cancel it instead.")
            )
        return target

    def _apply_new_plan(self, target, price_day):
        """Lines on the new plan: products it does not sell go, the others take its price
        (custom prices stay), its required lines are added."""
        sub, plan = self.subscription_id, self._target_plan()
        known = set(plan.price_ids.product_id.ids) | set(plan.line_ids.product_id.ids)
        for key, vals in list(target.items()):
            if vals["product"].id not in known:
                del target[key]
            elif not vals["custom"]:
                vals["price_unit"] = sub._price_for(plan, vals["product"], price_day)
        present = {vals["product"].id for vals in target.values()}
        for n, tmpl in enumerate(plan.line_ids.filtered(lambda t: not t.optional)):
            if tmpl.product_id.id not in present:
                target[("tmpl", n)] = self._new_line_vals(
                    tmpl.product_id, tmpl.name, tmpl.quantity, 0.0, price_day
                )

    def _new_line_vals(self, product, name, quantity, discount, price_day):
        sub = self.subscription_id
        return {
            "line": None,
            "product": product,
            "name": name,
            "quantity": quantity,
            "price_unit": sub._price_for(self._target_plan(), product, price_day),
            "discount": discount,
            "custom": False,
            "taxes": sub._product_taxes(product),
        }

    def _apply_change_lines(self, target, price_day):
        """The lines of the change on top: quantity (0 removes), discount, custom price. A
        line naming a product without a subscription line means the subscription's only
        line of that product, if it has one ("Seat → 8"), a new line otherwise."""
        sub = self.subscription_id
        by_product = {}
        for key, vals in target.items():
            by_product.setdefault(vals["product"].id, []).append(key)
        for n, cline in enumerate(self.line_ids):
            if cline.subscription_line_id and cline.subscription_line_id.subscription_id != sub:
                raise UserError(self.env._("A change line belongs to another subscription."))
            key = cline.subscription_line_id.id if cline.subscription_line_id else ("new", n)
            same_product = by_product.get(cline.product_id.id, [])
            by_product_match = not cline.subscription_line_id and len(same_product) == 1
            if by_product_match:
                key = same_product[0]
            if key not in target:
                target[key] = self._new_line_vals(
                    cline.product_id, cline.name, cline.quantity, cline.discount, price_day
                )
            vals = target[key]
            vals["quantity"] = cline.quantity
            if not by_product_match:  # matched by product: the line keeps its discount
                vals["discount"] = cline.discount
            if cline.custom_price:
                vals.update(price_unit=cline.price_unit, custom=True)
            if cline.quantity == 0:
                del target[key]

    @staticmethod
    def _terms(vals):
        return proration.Terms(
            Decimal(repr(vals["price_unit"])),
            Decimal(repr(vals["quantity"])),
            Decimal(repr(vals["discount"])),
        )

    def _current_lines(self):
        return OrderedDict(
            (
                line.id,
                {
                    "line": line,
                    "product": line.product_id,
                    "name": line.name,
                    "quantity": line.quantity,
                    "price_unit": line.price_unit,
                    "discount": line.discount,
                    "custom": line.price_overridden,
                    "taxes": line.tax_ids,
                },
            )
            for line in self.subscription_id.line_ids
        )

    @staticmethod
    def _recurring(lines):
        return {
            key: FlexSubscriptionChange._terms(vals)
            for key, vals in lines.items()
            if not vals["product"].flex_metered
        }

    def _amount_per_month(self, lines, plan, decimals):
        total = sum(
            (proration.full_amount(terms, decimals) for terms in self._recurring(lines).values()),
            Decimal(0),
        )
        return total / Decimal(repr(plan.months_per_period()))

    # ------------------------------------------------------------------ planning

    def _plan(self):
        """Everything the change does, computed without writing: a dict with the
        effective date, the mode, the items (credit/charge per line) and the target."""
        self.ensure_one()
        sub = self.subscription_id
        env = self.env
        if sub.state not in ("trial", "active", "to_close"):
            raise UserError(
                env._(
                    "%(name)s cannot be changed in its current state (%(state)s).",
                    name=sub.name,
                    state=dict(sub._fields["state"]._description_selection(env))[sub.state],
                )
            )
        if self.change_type == "plan" and self.new_plan_id == sub.plan_id:
            raise UserError(env._("The subscription is already on this plan."))
        today = self._today()
        day = self._requested_day()
        decimals = sub.currency_id.decimal_places
        mode = self._get_mode()
        old_lines = self._current_lines()
        switch = self._period_switch() if self.change_type == "plan" else None
        notes = []
        if self.change_type == "cancel_now":
            if (
                sub.commitment_end_date
                and sub.commitment_end_date > day
                and not env.user.has_group("subscription_flex.group_flex_manager")
            ):
                raise UserError(
                    env._(
                        "The minimum term runs until %(date)s: the subscription cannot be "
                        "cancelled before.",
                        date=format_date(env, sub.commitment_end_date - timedelta(days=1)),
                    )
                )
            mode = "invoice"
        # Where the change lands: the plan's rules may move it to a period end (not when
        # a scheduled change is applied on its day: that was decided when it was asked).
        target = self._get_target_lines(sub._price_day(day))
        plan = self._target_plan()
        old_month = self._amount_per_month(old_lines, sub.plan_id, decimals)
        new_month = self._amount_per_month(target, plan, decimals)
        decrease = new_month < old_month and not switch
        deferred = None
        if self.change_type != "cancel_now" and not sub._is_unbilled_boundary(day):
            if mode == "none":
                deferred = env._("the plan does not prorate changes")
            elif switch == "shorter" and sub.plan_id.period_decrease_timing == "period_end":
                deferred = env._("a switch to a shorter period starts with the next period")
            elif decrease and sub.plan_id.downgrade_timing == "period_end":
                deferred = env._("downgrades take effect at the end of the period")
        if deferred and not self.env.context.get("flex_change_on_its_day"):
            day = sub._current_period_end(day)
            notes.append(
                env._(
                    "Takes effect on %(date)s: %(why)s.", date=format_date(env, day), why=deferred
                )
            )
        if (
            decrease
            and self.change_type in ("lines", "plan")
            and sub.commitment_end_date
            and day < sub.commitment_end_date
            and not self.env.context.get("flex_change_on_its_day")
        ):
            day = max(day, sub._current_period_end(sub.commitment_end_date - timedelta(days=1)))
            notes.append(
                env._(
                    "Takes effect on %(date)s, after the minimum term.", date=format_date(env, day)
                )
            )
        if sub.end_date and day >= sub.end_date and self.change_type != "cancel_now":
            raise UserError(
                env._(
                    "The subscription ends on %(date)s, before the change would take effect.",
                    date=format_date(env, sub.end_date),
                )
            )
        if sub._is_unbilled_boundary(day) or switch:
            price_day = day  # a new period starts that day: priced with that day's versions
        else:
            price_day = sub._price_day(day)  # the running period's versions
        target = self._get_target_lines(price_day)
        new_month = self._amount_per_month(target, plan, decimals)
        items = self._compute_items(old_lines, target, day, switch, decimals)
        if switch and items:
            mode = "invoice"  # the new period is charged on the day it starts
        if mode == "next_invoice" and items:
            net = sum(item["amount"] for item in items)
            next_charge = sum(
                (proration.full_amount(t, decimals) for t in self._recurring(target).values()),
                Decimal(0),
            )
            if net < 0 and -net > next_charge:
                # A credit larger than the next invoice would make it negative (Odoo refuses
                # to post those): it is credited now instead.
                mode = "invoice"
                notes.append(
                    env._("The credit exceeds the next invoice: a credit note is issued now.")
                )
        return {
            "today": today,
            "effective_date": day,
            "scheduled": day > today,
            "mode": mode,
            "switch": switch,
            "decrease": decrease,
            "old_lines": old_lines,
            "target": target,
            "plan": plan,
            "items": items,
            "notes": notes,
            "old_month": old_month,
            "new_month": new_month,
        }

    def _compute_items(self, old_lines, target, day, switch, decimals):
        """Credit and charge per line (dicts) of a change on ``day``."""
        sub = self.subscription_id
        period = sub._billed_period_at(day)
        if period is None:
            return []  # trial, or ``day`` starts a period not billed yet: nothing to prorate
        old = self._recurring(old_lines)
        new = self._recurring(target)
        arrears = sub.plan_id.invoicing_timing == "arrears"
        items = []

        def add(key, vals, kind, amount, start, end, period_days):
            if not amount:
                return
            items.append(
                {
                    "key": key,
                    "line": vals["line"],
                    "product": vals["product"],
                    "taxes": vals["taxes"],
                    "name": vals["name"],
                    "kind": kind,
                    "quantity": vals["quantity"],
                    "price_unit": vals["price_unit"],
                    "discount": vals["discount"],
                    "start": start,
                    "end": end,
                    "days": (end - start).days,
                    "period_days": period_days,
                    "amount": amount,
                }
            )

        if arrears:
            # Nothing was billed yet for this period: each set of terms is billed for the
            # days it was in force. The old terms' segment ends today.
            for key in sorted(old, key=repr):
                if key in new and old[key] == new[key] and not switch:
                    continue
                line = old_lines[key]["line"]
                seg_start = max(period.start, line.terms_start or period.start)
                amount = proration.prorate_span(old[key], period, seg_start, day, decimals)
                add(key, old_lines[key], "charge", amount, seg_start, day, period.days)
            return items
        if switch:
            new_period = P.period_at(
                day, self._target_plan().billing_interval, self._target_plan().billing_unit, 0
            )
            amounts = proration.switch_amounts(old, new, period, day, decimals)
            for key, (credit, charge) in amounts.items():
                if key in old:
                    add(key, old_lines[key], "credit", credit, day, period.end, period.days)
                if key in new:
                    add(key, target[key], "charge", charge, day, new_period.end, new_period.days)
            return items
        changed_old = {k: t for k, t in old.items() if k not in new or new[k] != t}
        changed_new = {k: t for k, t in new.items() if k not in old or old[k] != t}
        amounts = proration.change_amounts(changed_old, changed_new, period, day, decimals)
        for key, (credit, charge) in amounts.items():
            if key in changed_old:
                add(key, old_lines[key], "credit", credit, day, period.end, period.days)
            if key in changed_new:
                add(key, target[key], "charge", charge, day, period.end, period.days)
        return items

    # ------------------------------------------------------------------ preview

    def _get_preview(self):
        """The exact result of confirming the change now, written nowhere.

        Returns a dict: ``effective_date``, ``scheduled``, ``mode``, ``document``
        (``invoice``, ``refund``, ``next_invoice``, ``none``), ``lines`` (label, kind,
        dates, days, untaxed amount, taxes, total), ``untaxed``, ``tax``, ``total``,
        ``recurring_before``/``recurring_after`` and ``mrr_before``/``mrr_after``, ``notes``.
        The portal shows the same dict.
        """
        self.ensure_one()
        plan = self._plan()
        return self._preview_from_plan(plan)

    def _preview_from_plan(self, plan):
        sub = self.subscription_id
        items = plan["items"]
        lines = sub._tax_preview_lines(items)
        untaxed = sum((line["untaxed"] for line in lines), Decimal(0))
        tax = sum((line["tax"] for line in lines), Decimal(0))
        total = untaxed + tax
        if not items:
            document = "none"
        elif plan["mode"] == "next_invoice":
            document = "next_invoice"
        else:
            document = "invoice" if total > 0 else ("refund" if total < 0 else "none")
        decimals = sub.currency_id.decimal_places
        return {
            "effective_date": plan["effective_date"],
            "scheduled": plan["scheduled"],
            "mode": plan["mode"],
            "document": document,
            "lines": lines,
            "untaxed": untaxed,
            "tax": tax,
            "total": total,
            "currency": sub.currency_id,
            "notes": plan["notes"],
            "plan": plan["plan"],
            "mrr_before": round_money(plan["old_month"], decimals),
            "mrr_after": round_money(plan["new_month"], decimals),
        }

    def _preview_from_items(self):
        self.ensure_one()
        sub = self.subscription_id
        items = [
            {
                "product": item.product_id,
                "kind": item.kind,
                "start": item.period_start,
                "end": item.period_end + timedelta(days=1),
                "days": item.days,
                "period_days": item.period_days,
                "quantity": item.quantity,
                "price_unit": item.price_unit,
                "discount": item.discount,
                "amount": Decimal(repr(item.amount)),
                "name": item.name,
                "line": item.subscription_line_id,
                "taxes": item.tax_ids,
            }
            for item in self.item_ids
        ]
        lines = sub._tax_preview_lines(items)
        return {
            "effective_date": self.effective_date,
            "scheduled": False,
            "mode": self.proration_mode,
            "document": "invoice"
            if self.move_id.move_type == "out_invoice"
            else ("refund" if self.move_id else "none"),
            "lines": lines,
            "untaxed": Decimal(repr(self.amount_untaxed)),
            "tax": Decimal(repr(self.amount_tax)),
            "total": Decimal(repr(self.amount_total)),
            "currency": sub.currency_id,
            "notes": [],
            "plan": self._target_plan(),
            "mrr_before": None,
            "mrr_after": None,
        }

    # ------------------------------------------------------------------ confirm

    def action_confirm(self):
        """Apply now, or schedule when the change takes effect later."""
        for change in self:
            if change.state != "draft":
                raise UserError(self.env._("This change was already confirmed or cancelled."))
            change.subscription_id._lock_for_change()
            if change.change_type == "cancel_end":
                change._apply_cancel_end()
                continue
            if change.change_type == "undo_cancel":
                change._apply_undo_cancel()
                continue
            plan = change._plan()
            if plan["scheduled"]:
                change.write({"state": "scheduled", "effective_date": plan["effective_date"]})
                change.subscription_id.message_post(
                    body=self.env._(
                        "Change scheduled for %(date)s: %(name)s.",
                        date=format_date(self.env, plan["effective_date"]),
                        name=change.name,
                    )
                )
            else:
                change._apply(plan)
        return True

    def action_cancel(self):
        for change in self:
            if change.state not in ("draft", "scheduled"):
                raise UserError(self.env._("Only draft or scheduled changes can be cancelled."))
        self.write({"state": "cancelled"})
        for change in self:
            change.subscription_id.message_post(
                body=self.env._("Scheduled change cancelled: %(name)s.", name=change.name)
            )
        return True

    def _snapshot(self, lines, plan):
        return {
            "plan": plan.display_name,
            "plan_id": plan.id,
            "period": plan.period_label,
            "lines": [
                {
                    "product": vals["product"].display_name,
                    "product_id": vals["product"].id,
                    "quantity": vals["quantity"],
                    "price_unit": vals["price_unit"],
                    "discount": vals["discount"],
                }
                for vals in lines.values()
            ],
        }

    def _apply(self, plan=None):
        """Apply the change today (``effective_date`` = today). Atomic: any error rolls
        the whole change back."""
        self.ensure_one()
        self = self.with_context(flex_mrr_defer=True)  # noqa: PLW0642 - one movement, at the end
        sub = self.subscription_id
        with self.env.cr.savepoint():
            # Billing runs as the invoicing cron would (sudo), as sale orders invoice:
            # a subscription user needs no accounting rights to bill a change.
            sub.sudo()._catch_up_invoicing(
                self._requested_day() if plan is None else plan["effective_date"]
            )
            plan = self._plan()  # recomputed after the catch-up, on fresh data
            day = plan["effective_date"]
            if day > plan["today"]:
                raise UserError(self.env._("This change takes effect on a later day."))
            usage_moves = sub.sudo()._bill_usage_until(day) if self._touches_metered(plan) else None
            old_terms = self._snapshot(plan["old_lines"], sub.plan_id)
            # Items are the trail of amounts: users read them, only this code writes them.
            items = (
                self.env["flex.subscription.change.item"]
                .sudo()
                .create([self._prepare_item_vals(item, day) for item in plan["items"]])
            )
            if self.change_type == "plan":
                sub._switch_plan(self.new_plan_id, day, plan["switch"])
            if self.change_type != "cancel_now":
                key_to_line = sub._write_target_lines(plan["target"], day, plan["old_lines"])
                for item in items:
                    if not item.subscription_line_id and item.line_key in key_to_line:
                        item.subscription_line_id = key_to_line[item.line_key]
            move = self.env["account.move"]
            if plan["mode"] == "invoice":
                # Invoicing now settles what earlier changes left for the next invoice too
                # (a cancellation would otherwise leave it unbilled).
                to_bill = items | self._pending_items()
                if to_bill:
                    move = sub.sudo()._invoice_change_items(to_bill).sudo(False)
                    if not move:
                        to_bill.write({"state": "netted"})  # credits and charges cancel out
            preview = self._preview_from_plan(plan)
            self.write(
                {
                    "state": "applied",
                    "effective_date": day,
                    "applied_by_id": self.env.user.id,
                    "applied_on": fields.Datetime.now(),
                    "proration_mode": plan["mode"],
                    "move_id": move.id,
                    "amount_untaxed": float(preview["untaxed"]),
                    "amount_tax": float(preview["tax"]),
                    "amount_total": float(preview["total"]),
                    "old_terms": old_terms,
                    "new_terms": self._snapshot(plan["target"], plan["plan"]),
                }
            )
            if self.change_type == "cancel_now":
                sub._close(day, self.close_reason_id)
            sub._record_mrr(day, change=self)
            sub.message_post(body=self._chatter_message(preview, move, usage_moves))
            if self.change_type == "cancel_now":
                sub._send_event_reminder("cancellation", sub, f"cancel-{day.isoformat()}")
            else:
                sub._send_event_reminder("change_applied", self, f"change-{self.id}")
        return True

    def _pending_items(self):
        return (
            self.env["flex.subscription.change.item"]
            .sudo()
            .search(
                [
                    ("subscription_id", "=", self.subscription_id.id),
                    ("state", "=", "pending"),
                    ("change_id", "!=", self.id),
                    ("change_id.state", "=", "applied"),
                ]
            )
        )

    def _touches_metered(self, plan):
        if not self.subscription_id.has_metered_lines:
            return False
        old = {k for k, v in plan["old_lines"].items() if v["product"].flex_metered}
        new = {k for k, v in plan["target"].items() if v["product"].flex_metered}
        return self.change_type in ("plan", "cancel_now") or old != new

    def _chatter_message(self, preview, move, usage_moves):
        env = self.env
        currency = self.currency_id
        parts = [
            env._(
                "Change applied on %(date)s: %(name)s.",
                date=format_date(env, self.effective_date),
                name=self.name,
            )
        ]
        if move:
            parts.append(
                env._(
                    "%(doc)s %(ref)s: %(amount)s.",
                    doc=env._("Credit note")
                    if move.move_type == "out_refund"
                    else env._("Invoice"),
                    ref=move.name or "",
                    amount=format_amount(env, move.amount_total, currency),
                )
            )
        elif self.item_ids:
            parts.append(
                env._(
                    "%(amount)s added to the next invoice.",
                    amount=format_amount(env, float(preview["total"]), currency),
                )
            )
        if usage_moves:
            parts.append(env._("Usage up to the change billed separately."))
        return " ".join(parts)

    def _prepare_item_vals(self, item, day):
        return {
            "change_id": self.id,
            "subscription_id": self.subscription_id.id,
            "subscription_line_id": item["line"].id if item["line"] else False,
            "line_key": repr(item["key"]),
            "product_id": item["product"].id,
            "name": self.subscription_id._proration_label(item),
            "kind": item["kind"],
            "quantity": item["quantity"],
            "price_unit": item["price_unit"],
            "discount": item["discount"],
            "period_start": item["start"],
            "period_end": item["end"] - timedelta(days=1),
            "days": item["days"],
            "period_days": item["period_days"],
            "amount": float(item["amount"]),
            "tax_ids": [fields.Command.set(item["taxes"].ids)],
            "state": "pending",
        }

    def _apply_cancel_end(self):
        sub = self.subscription_id
        lines = self._current_lines()
        sub.action_request_close(
            reason=self.close_reason_id,
            requested_date=self.date if self.timing == "date" else None,
            note=self.note,
        )
        self._write_applied(sub.end_date or self._today(), lines, OrderedDict())

    def _apply_undo_cancel(self):
        self.subscription_id.action_undo_close()
        self._write_applied(self._today(), OrderedDict(), self._current_lines())

    def _write_applied(self, day, old_lines, new_lines):
        """Trail of a change that moves no money (cancellation scheduled or undone)."""
        plan = self.subscription_id.plan_id
        self.write(
            {
                "state": "applied",
                "effective_date": day,
                "applied_by_id": self.env.user.id,
                "applied_on": fields.Datetime.now(),
                "old_terms": self._snapshot(old_lines, plan),
                "new_terms": self._snapshot(new_lines, plan),
            }
        )

    # ------------------------------------------------------------------ cron

    @api.model
    def _cron_apply_scheduled(self, limit=50):
        """Apply the scheduled changes due today, each in its own savepoint; a change
        another worker holds is skipped (``FOR UPDATE SKIP LOCKED``), and an applied
        change is never applied again (its state is checked under the row lock). At most
        ``limit`` per call: Odoo's cron runner commits and calls again while some remain
        (``ir.cron._notify_progress``), and the job's other lanes are woken to help.

        Run by the cron (not in tests), each change is committed once applied: its
        document, posted, holds the journal's gapless sequence until the commit, and the
        subscription's row lock blocks anyone changing it, so neither may wait for the
        rest of the batch. The rows locked by the first query are then locked again,
        one by one, before they are applied."""
        today = self._today()
        started = time.time()
        self.env.flush_all()
        try:
            # A change another worker applied after this transaction's snapshot was taken
            # cannot be locked (repeatable read: a serialization failure, never a second
            # application): this run starts again at once, with a fresh snapshot.
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    """
                    SELECT id FROM flex_subscription_change
                     WHERE state = 'scheduled' AND effective_date <= %s
                     ORDER BY effective_date, id
                     LIMIT %s
                       FOR UPDATE SKIP LOCKED
                    """,
                    (today, limit),
                )
                ids = [row[0] for row in self.env.cr.fetchall()]
        except SerializationFailure:
            _logger.info("Scheduled changes: applied by another worker meanwhile, again")
            # sudo: the cron's user runs the job's code; cron records are technical.
            cron = self.env["ir.cron"].sudo().browse(self.env.context.get("cron_id")).exists()
            if cron:
                cron._trigger()
            return self.browse()
        # Every company's changes (the cron's user may not see them all), each applied in
        # its own company.
        changes = self.sudo().browse(ids)
        applied = self.browse()
        cancelled = 0
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        committed = False
        for change in changes:
            if committed and not change._lock_scheduled(today):
                continue  # applied by another worker since the last commit, or held by it
            # A subscription being invoiced (or changed) by another worker, or changed by
            # it since this snapshot: next run.
            try:
                with mute_logger("odoo.sql_db"), self.env.cr.savepoint(flush=False):
                    free = change.subscription_id._lock_for_change(raise_if_busy=False)
            except SerializationFailure:
                free = False
            if not free:
                continue
            try:
                with self.env.cr.savepoint():
                    change.with_company(change.company_id).with_context(
                        flex_today=change.effective_date
                    )._apply_scheduled()
                applied |= change
            except (UserError, ValidationError) as error:
                self.env.invalidate_all()
                message = str(error.args[0] if error.args else error)
                change.write({"state": "cancelled", "note": message})
                cancelled += 1
                change.subscription_id.message_post(
                    body=self.env._(
                        "Scheduled change %(name)s could not be applied: %(error)s",
                        name=change.name,
                        error=message,
                    )
                )
            except Exception:  # noqa: BLE001 - one broken change never blocks the others
                self.env.invalidate_all()
                _logger.exception("Scheduled change %s failed; retried on the next run", change.id)
                continue
            if auto_commit:
                # As Odoo's own batch crons do (mail queue, EDI): one change, one commit.
                self.env.cr.commit()  # pylint: disable=invalid-commit
                committed = True
        done = len(applied) + cancelled
        # Still due, those other workers hold included (a broken change too: it is
        # retried, but only while other changes get done).
        remaining = self.sudo().search_count(
            [("state", "=", "scheduled"), ("effective_date", "<=", today)]
        )
        if done:
            _logger.info(
                "Scheduled changes: %s applied, %s cancelled, %s due",
                len(applied),
                cancelled,
                remaining,
            )
        Cron = self.env["ir.cron"]
        if done and remaining and Cron._flex_out_of_time(time.time() - started):
            # Near Odoo's time limit: this run ends here, a new one starts at once.
            Cron._flex_yield_run()
            Cron._notify_progress(done=done, remaining=0)
        else:
            Cron._notify_progress(done=done, remaining=remaining if done else 0)
        if done and remaining:
            Cron._flex_wake_lanes()
        return applied

    def _lock_scheduled(self, today):
        """Lock this change again in a new transaction (after a commit): ``False`` when
        it is no longer due and scheduled, or another worker holds it."""
        self.ensure_one()
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    """
                    SELECT id FROM flex_subscription_change
                     WHERE id = %s AND state = 'scheduled' AND effective_date <= %s
                       FOR UPDATE SKIP LOCKED
                    """,
                    (self.id, today),
                )
                return bool(self.env.cr.fetchone())
        except SerializationFailure:
            return False

    def _apply_scheduled(self):
        self.ensure_one()
        if self.state != "scheduled":
            return
        # The day has come: it is applied as a change effective today.
        self.write({"timing": "date", "date": self.effective_date})
        self.with_context(flex_change_on_its_day=True)._apply()


class FlexSubscriptionChangeLine(models.Model):
    _name = "flex.subscription.change.line"
    _description = "Subscription Change Line"
    _order = "change_id, id"

    change_id = fields.Many2one(
        "flex.subscription.change", required=True, ondelete="cascade", index=True
    )
    subscription_id = fields.Many2one(related="change_id.subscription_id")
    currency_id = fields.Many2one(related="change_id.currency_id")
    subscription_line_id = fields.Many2one(
        "flex.subscription.line",
        string="Current Line",
        domain="[('subscription_id', '=', subscription_id)]",
        ondelete="cascade",
    )
    product_id = fields.Many2one(
        "product.product",
        required=True,
        domain="[('flex_is_subscription', '=', True)]",
        compute="_compute_from_line",
        store=True,
        readonly=False,
        precompute=True,
    )
    name = fields.Char(string="Description")
    current_quantity = fields.Float(
        related="subscription_line_id.quantity", digits="Product Unit of Measure"
    )
    quantity = fields.Float(
        string="New Quantity",
        digits="Product Unit of Measure",
        required=True,
        default=1.0,
        help="0 removes the line.",
    )
    custom_price = fields.Boolean(help="Charge the price below instead of the plan's price.")
    # The precision of an invoice line's unit price: what the change will bill.
    price_unit = fields.Float(digits="Product Price")
    discount = fields.Float(
        string="Discount (%)",
        digits="Discount",
        compute="_compute_from_line",
        store=True,
        readonly=False,
        precompute=True,
    )

    _sql_constraints = [
        ("quantity_not_negative", "CHECK(quantity >= 0)", "A quantity cannot be negative."),
        (
            "discount_range",
            "CHECK(discount >= 0 AND discount <= 100)",
            "A discount is between 0 and 100%.",
        ),
    ]

    @api.depends("subscription_line_id")
    def _compute_from_line(self):
        for cline in self:
            if cline.subscription_line_id:
                cline.product_id = cline.subscription_line_id.product_id
                cline.discount = cline.subscription_line_id.discount
            elif not cline.product_id:
                cline.product_id = False
                cline.discount = cline.discount or 0.0


class FlexSubscriptionChangeItem(models.Model):
    """One prorated amount of an applied change: the trail of what was credited or
    charged, for which line, days and terms, and where it was invoiced."""

    _name = "flex.subscription.change.item"
    _description = "Subscription Change Proration"
    _order = "change_id, id"

    change_id = fields.Many2one(
        "flex.subscription.change", required=True, ondelete="cascade", index=True
    )
    subscription_id = fields.Many2one("flex.subscription", required=True, index=True)
    currency_id = fields.Many2one(related="change_id.currency_id", store=True)
    subscription_line_id = fields.Many2one("flex.subscription.line", ondelete="set null")
    line_key = fields.Char()
    product_id = fields.Many2one("product.product", required=True)
    tax_ids = fields.Many2many(
        "account.tax",
        string="Taxes",
        context={"active_test": False},
        help="Taxes of the subscription line the item prorates, as they were when the "
        "change was applied.",
    )
    name = fields.Char(string="Label", required=True)
    kind = fields.Selection([("credit", "Credit"), ("charge", "Charge")], required=True)
    quantity = fields.Float(digits="Product Unit of Measure")
    price_unit = fields.Float(digits="Subscription Unit Price")
    discount = fields.Float(digits="Discount")
    period_start = fields.Date(string="From")
    period_end = fields.Date(string="To")
    days = fields.Integer()
    period_days = fields.Integer(string="Days in Period")
    amount = fields.Monetary(
        help="Untaxed when the prices exclude taxes, taxes included when they include them."
    )
    state = fields.Selection(
        [("pending", "To invoice"), ("invoiced", "Invoiced"), ("netted", "Netted out")],
        default="pending",
        required=True,
        index=True,
    )
    move_line_ids = fields.One2many("account.move.line", "flex_change_item_id")

    def _sync_state(self):
        self = self.sudo()  # noqa: PLW0642 - computed from invoices the user may not read
        for item in self.filtered(lambda item: item.state != "netted"):
            live = item.move_line_ids.filtered(lambda line: line.parent_state != "cancel")
            state = "invoiced" if live else "pending"
            if item.state != state:
                item.state = state
