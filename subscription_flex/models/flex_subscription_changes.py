"""Subscription side of change requests (see ``flex_subscription_change.py``)."""

from datetime import timedelta
from decimal import Decimal

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_amount, format_date, formatLang

from ..core import periods as P
from .flex_subscription import BILLABLE_STATES


# One file per concern (invoicing, usage, changes) keeps each readable.
class FlexSubscription(models.Model):
    _inherit = "flex.subscription"  # pylint: disable=consider-merging-classes-inherited

    change_ids = fields.One2many("flex.subscription.change", "subscription_id", string="Changes")
    scheduled_change_count = fields.Integer(compute="_compute_scheduled_change_count")

    @api.depends("change_ids.state")
    def _compute_scheduled_change_count(self):
        counts = dict(
            self.env["flex.subscription.change"]._read_group(
                [("subscription_id", "in", self.ids), ("state", "=", "scheduled")],
                ["subscription_id"],
                ["__count"],
            )
        )
        for sub in self:
            sub.scheduled_change_count = counts.get(sub, 0)

    # ------------------------------------------------------------------ actions

    def action_open_change(self, change_type="lines"):
        """Open a draft change with its live preview."""
        self.ensure_one()
        change_type = self.env.context.get("flex_change_type", change_type)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Change %(name)s", name=self.name),
            "res_model": "flex.subscription.change",
            "view_mode": "form",
            "target": "new",
            "context": {
                "default_subscription_id": self.id,
                "default_change_type": change_type,
            },
        }

    def action_view_changes(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "subscription_flex.flex_subscription_change_action"
        )
        action["domain"] = [("subscription_id", "=", self.id)]
        action["context"] = {"default_subscription_id": self.id}
        return action

    # ------------------------------------------------------------ schedule math

    def _lock_for_change(self, raise_if_busy=True):
        """Row lock on the subscriptions: two changes (or a change and the invoicing cron)
        never interleave. A subscription another transaction holds is not waited for: a
        clear message, or ``False`` when ``raise_if_busy`` is off (the cron skips it)."""
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT id FROM flex_subscription WHERE id IN %s FOR UPDATE SKIP LOCKED",
            (tuple(self.ids),),
        )
        if len(self.env.cr.fetchall()) == len(self.ids):
            return True
        if not raise_if_busy:
            return False
        raise UserError(
            self.env._("The subscription is being invoiced or changed; try again shortly.")
        )

    def _schedule_period(self, day, cut=True):
        """Period of the billing schedule containing ``day`` (``None`` before the anchor),
        cut at the end date when ``cut``."""
        self.ensure_one()
        plan = self.plan_id
        anchor = self.billing_anchor_date
        if not anchor or day < anchor:
            return None
        period = P.period_containing(anchor, plan.billing_interval, plan.billing_unit, day)
        if cut and self.end_date and period.start < self.end_date < period.end:
            period = P.Period(period.start, self.end_date)
        return period

    def _current_period_end(self, day):
        """First period boundary after ``day`` (the trial's end during a trial)."""
        self.ensure_one()
        period = self._schedule_period(day, cut=False)
        if period is None:
            return self.billing_anchor_date or day
        return period.end

    def _next_boundary(self, day):
        """First period start on or after ``day`` (the trial's end during a trial)."""
        self.ensure_one()
        period = self._schedule_period(day, cut=False)
        if period is None:
            return max(day, self.billing_anchor_date or day)
        return day if period.start == day else period.end

    def _migration_change_vals(self, plan, day):
        self.ensure_one()
        return {
            "subscription_id": self.id,
            "change_type": "plan",
            "new_plan_id": plan.id,
            "timing": "date",
            "date": day,
            "proration_mode": "none",
            "source": "migration",
        }

    def _price_day(self, day):
        """Day whose price versions price the running period: its first day."""
        self.ensure_one()
        period = self._schedule_period(day, cut=False)
        if period is None:
            return self.billing_anchor_date or day
        return period.start

    def _is_unbilled_boundary(self, day):
        """``day`` starts a period nobody has paid for yet (or is before the first one):
        a change then simply applies, nothing is prorated."""
        self.ensure_one()
        period = self._schedule_period(day, cut=False)
        if period is None:
            return True
        if period.start != day:
            return False
        if self.plan_id.invoicing_timing == "arrears":
            return True
        return not self.next_period_start or self.next_period_start <= day

    def _billed_period_at(self, day):
        """Period whose terms a change on ``day`` prorates; ``None`` when nothing is."""
        self.ensure_one()
        if self._is_unbilled_boundary(day):
            return None
        return self._schedule_period(day)

    def _price_for(self, plan, product, day):
        """Unit price of ``product`` in ``plan`` on ``day`` (the product's sales price,
        converted, when the plan has no version for it)."""
        self.ensure_one()
        return self.env["flex.price"]._get_unit_price(
            plan, product, self.currency_id, self.company_id, day
        )

    def _product_taxes(self, product):
        """Taxes as ``account.move.line._get_computed_taxes`` picks them for a customer
        invoice: product taxes of the company, mapped by the fiscal position."""
        self.ensure_one()
        company = self.company_id
        taxes = product.taxes_id.filtered_domain(
            self.env["account.tax"]._check_company_domain(company)
        )
        if taxes:
            taxes = taxes._filter_taxes_by_company(company)
        if taxes and self.fiscal_position_id:
            taxes = self.fiscal_position_id.map_tax(taxes)
        return taxes

    def _product_income_account(self, product, journal):
        """Income account as ``account.move.line._compute_account_id`` picks it."""
        self.ensure_one()
        accounts = product.with_company(self.company_id).product_tmpl_id.get_product_accounts(
            fiscal_pos=self.fiscal_position_id
        )
        return accounts["income"] or journal.default_account_id

    # ---------------------------------------------------------------- applying

    def _catch_up_invoicing(self, day):
        """Invoice what was due before ``day`` first, so a change prorates billed terms."""
        self.ensure_one()
        if self.state not in BILLABLE_STATES or not self.next_invoice_date:
            return
        advance = self.plan_id.invoicing_timing == "advance"
        until = day - timedelta(days=1) if advance else day
        if self.next_invoice_date <= until:
            self._create_recurring_invoices(until)
            if self.invoicing_error:
                raise UserError(
                    self.env._(
                        "The periods due before the change could not be invoiced: %(error)s",
                        error=self.invoicing_error,
                    )
                )

    def _bill_usage_until(self, day):
        """Bill the usage recorded before ``day`` with the current terms (a change on
        ``day`` splits the usage period). Returns the invoice, if any."""
        self.ensure_one()
        start = self.usage_billed_until or self.billing_anchor_date
        if not self.has_metered_lines or not start or day <= start:
            return None
        journal = self._get_invoice_journal()
        key = (self, day, "usage_split")
        usage = self._prepare_usage_lines(
            {key: day},
            lambda sub: journal,
            lambda line, journal: (line._get_income_account(journal), line._get_taxes()),
        )
        lines_vals = usage.get(key, [])
        move = None
        if lines_vals:
            Tax = self.env["account.tax"]
            self._add_invoice_line_amounts(
                lines_vals, [Tax.browse(vals["tax_ids"][0][2]) for vals in lines_vals]
            )
            vals = self._prepare_invoice_vals(
                P.Period(start, day), lines_vals, journal, kind="usage_split"
            )
            vals["invoice_date"] = day
            move = self.env["account.move"].sudo().create(vals)
            move._flex_finalize()
            self._mark_usage_invoiced(move)
            move = move.sudo(False)
        self.usage_billed_until = day
        return move

    def _switch_plan(self, new_plan, day, switch):
        """Move to ``new_plan`` on ``day``; a new billing period starts on ``day`` when
        the period length changes (and ``day`` is past the trial)."""
        self.ensure_one()
        vals = {"plan_id": new_plan.id}
        anchor = self.billing_anchor_date
        if switch and anchor and day >= anchor:
            charged_now = (
                not self._is_unbilled_boundary(day)
                and self.plan_id.invoicing_timing == "advance"
                and new_plan.invoicing_timing == "advance"
            )
            new_period = P.period_at(day, new_plan.billing_interval, new_plan.billing_unit, 0)
            vals.update(
                billing_anchor_date=day,
                next_period_start=new_period.end if charged_now else day,
            )
        self.write(vals)

    def _write_target_lines(self, target, day, old_lines=None):
        """Make the lines what ``target`` says; changed and new lines get ``terms_start``
        = ``day``. Returns ``{repr(key): line}``.

        ``old_lines`` are the terms before the change: a plan switch recomputes the
        lines' prices from the new plan before this runs, so a line may already hold
        its new price and still have new terms from ``day`` on."""
        self.ensure_one()
        old_lines = old_lines or {}
        result = {}
        keep = {key for key in target if isinstance(key, int)}
        create_keys, create_vals = [], []
        for key, vals in target.items():
            line = vals["line"]
            new = {
                "quantity": vals["quantity"],
                "price_unit": vals["price_unit"],
                "discount": vals["discount"],
                "price_overridden": vals["custom"],
            }
            if line:
                changed = {name: value for name, value in new.items() if line[name] != value}
                before = old_lines.get(key)
                if changed or (
                    before
                    and (before["quantity"], before["price_unit"], before["discount"])
                    != (vals["quantity"], vals["price_unit"], vals["discount"])
                ):
                    changed["terms_start"] = day
                    line.write(changed)
                result[repr(key)] = line
            else:
                create_keys.append(key)
                create_vals.append(
                    {
                        **new,
                        "subscription_id": self.id,
                        "product_id": vals["product"].id,
                        "name": vals["name"] or False,
                        "terms_start": day,
                    }
                )
        created = self.env["flex.subscription.line"].create(create_vals)
        result.update({repr(key): line for key, line in zip(create_keys, created, strict=True)})
        self.line_ids.filtered(lambda line: line.id not in keep and line not in created).unlink()
        return result

    def _prepare_item_line_vals(self, items, journal, sign=1):
        """Invoice lines of proration items: one line each, quantity 1, the item's amount
        as unit price (already rounded: Odoo's subtotal is then exactly the amount)."""
        self.ensure_one()
        lines_vals, lines_taxes = [], []
        for item in items:
            product = item.product_id
            taxes = item.tax_ids
            lines_vals.append(
                self._invoice_line_vals(
                    "proration",
                    product,
                    item.name,
                    1.0,
                    sign * item.amount,
                    self._product_income_account(product, journal),
                    taxes,
                    flex_subscription_line_id=item.subscription_line_id.id,
                    flex_period_start=item.period_start,
                    flex_period_end=item.period_end,
                    flex_change_item_id=item.id,
                    **(
                        {"analytic_distribution": item.subscription_line_id.analytic_distribution}
                        if item.subscription_line_id.analytic_distribution
                        else {}
                    ),
                )
            )
            lines_taxes.append(taxes)
        return lines_vals, lines_taxes

    def _invoice_change_items(self, items):
        """Invoice (net increase) or credit note (net decrease) of ``items`` today,
        posted as the plan says. Nothing when they cancel out."""
        self.ensure_one()
        currency = self.currency_id
        total = sum(items.mapped("amount"))
        if currency.is_zero(total):
            return self.env["account.move"]
        refund = total < 0
        journal = self._get_invoice_journal()
        lines_vals, lines_taxes = self._prepare_item_line_vals(
            items, journal, sign=-1 if refund else 1
        )
        if not refund:
            self._add_invoice_line_amounts(lines_vals, lines_taxes)
        period = P.Period(
            min(items.mapped("period_start")),
            max(items.mapped("period_end")) + timedelta(days=1),
        )
        vals = self._prepare_invoice_vals(period, lines_vals, journal, kind="change")
        vals.update(
            move_type="out_refund" if refund else "out_invoice",
            invoice_date=items[0].change_id.effective_date or self._today(),
        )
        if refund:
            vals.pop("checked", None)
        # As sale orders do: a subscription user bills the change without invoicing rights.
        Move = self.env["account.move"].sudo().with_context(default_move_type=vals["move_type"])
        move = Move.create(vals)
        move._flex_finalize()
        items._sync_state()
        return move.sudo(False)

    def _format_unit_price(self, price):
        """``price`` with the currency, at the precision it is billed with: the
        currency's decimals, more when the price has more ("¥ 14,301.643")."""
        self.ensure_one()
        currency = self.currency_id
        decimals = max(-Decimal(repr(float(price))).normalize().as_tuple().exponent, 0)
        most = self.env["decimal.precision"].precision_get("Product Price")
        digits = max(currency.decimal_places, min(decimals, most))
        if digits == currency.decimal_places:
            return format_amount(self.env, price, currency)
        amount = formatLang(self.env, price, digits=digits)
        if currency.position == "after":
            return f"{amount}\N{NO-BREAK SPACE}{currency.symbol}"
        return f"{currency.symbol}\N{NO-BREAK SPACE}{amount}"

    def _proration_label(self, item):
        env = self.env
        values = {
            "label": item["name"] or item["product"].display_name,
            "qty": f"{item['quantity']:g}",
            "price": self._format_unit_price(item["price_unit"]),
            "days": item["days"],
            "period_days": item["period_days"],
            "start": format_date(env, item["start"]),
            "end": format_date(env, item["end"] - timedelta(days=1)),
        }
        if item["discount"]:
            values["price"] += f" -{item['discount']:g}%"
        if item["kind"] == "credit":
            return env._(
                "Credit for unused time: %(label)s, %(qty)s × %(price)s, "
                "%(days)s/%(period_days)s days (%(start)s - %(end)s)",
                **values,
            )
        return env._(
            "%(label)s, %(qty)s × %(price)s, %(days)s/%(period_days)s days (%(start)s - %(end)s)",
            **values,
        )

    def _tax_preview_lines(self, items):
        """Untaxed, tax and total of each item, with Odoo's own tax engine (as the
        invoice will compute them); amounts are ``Decimal`` rounded to the currency."""
        self.ensure_one()
        currency = self.currency_id
        base_lines = self._tax_base_lines(
            (item["product"], item["taxes"], float(item["amount"]), 1.0, 0.0) for item in items
        )
        result = []
        decimals = currency.decimal_places
        for item, base_line in zip(items, base_lines, strict=True):
            details = base_line["tax_details"]
            untaxed = details["total_excluded_currency"] + details["delta_total_excluded_currency"]
            tax = sum(data["tax_amount_currency"] for data in details["taxes_data"])
            quantum = Decimal(1).scaleb(-decimals)
            untaxed_d = Decimal(repr(currency.round(untaxed))).quantize(quantum)
            total_d = untaxed_d + Decimal(repr(currency.round(tax))).quantize(quantum)
            result.append(
                {
                    "label": self._proration_label(item),
                    "kind": item["kind"],
                    "product": item["product"],
                    "start": item["start"],
                    "last_day": item["end"] - timedelta(days=1),
                    "days": item["days"],
                    "period_days": item["period_days"],
                    "amount": item["amount"],
                    "untaxed": untaxed_d,
                    "tax": total_d - untaxed_d,
                    "total": total_d,
                }
            )
        return result
