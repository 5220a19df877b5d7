import logging
import time
from collections import defaultdict
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import format_date, split_every

from ..core import periods as P
from ..core import proration
from ..core.money import to_decimal
from .flex_plan import PERIOD_UNITS

_logger = logging.getLogger(__name__)

# States in which a subscription is billed (trial: only once its trial is over).
BILLABLE_STATES = ("trial", "active", "to_close")


class FlexSubscription(models.Model):
    _name = "flex.subscription"
    _description = "Subscription"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True

    name = fields.Char(
        string="Reference", required=True, copy=False, readonly=True, default="/", index="trigram"
    )
    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        required=True,
        tracking=True,
        index=True,
        check_company=True,
    )
    commercial_partner_id = fields.Many2one(
        related="partner_id.commercial_partner_id", store=True, index=True
    )
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    currency_id = fields.Many2one(
        "res.currency",
        required=True,
        compute="_compute_currency_id",
        store=True,
        readonly=False,
        precompute=True,
    )
    plan_id = fields.Many2one(
        "flex.plan", required=True, tracking=True, check_company=True, index=True
    )
    user_id = fields.Many2one(
        "res.users", string="Salesperson", default=lambda self: self.env.user, tracking=True
    )
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("trial", "Trial"),
            ("active", "Active"),
            ("paused", "Paused"),
            ("to_close", "To Close"),
            ("closed", "Closed"),
        ],
        default="draft",
        required=True,
        copy=False,
        tracking=True,
        index=True,
        group_expand="_group_expand_states",
    )
    line_ids = fields.One2many("flex.subscription.line", "subscription_id", copy=True)
    start_date = fields.Date(required=True, default=fields.Date.context_today, tracking=True)
    trial_end_date = fields.Date(
        copy=False, readonly=True, help="First day after the trial: the first billed day."
    )
    billing_anchor_date = fields.Date(
        copy=False,
        readonly=True,
        help="Start of the first billed period; every period is computed from it.",
    )
    next_period_start = fields.Date(copy=False, help="First day of the next period to invoice.")
    next_invoice_date = fields.Date(
        compute="_compute_next_invoice_date",
        store=True,
        index=True,
        tracking=True,
        help="Day the next period becomes due: its first day when invoiced in advance, "
        "the day after it ends when invoiced in arrears.",
    )
    term_end_date = fields.Date(
        copy=False,
        readonly=True,
        tracking=True,
        help="Fixed-term plans: end of the current term (exclusive).",
    )
    end_date = fields.Date(
        copy=False,
        readonly=True,
        tracking=True,
        help="Day the service ends (exclusive): nothing is invoiced from this day on.",
    )
    close_date = fields.Date(copy=False, readonly=True, tracking=True)
    close_reason_id = fields.Many2one("flex.close.reason", copy=False, tracking=True)
    close_note = fields.Text(copy=False)
    pause_date = fields.Date(copy=False, readonly=True)
    invoicing_error = fields.Text(copy=False, readonly=True)
    invoicing_error_date = fields.Date(
        copy=False,
        readonly=True,
        help="Day the last invoicing attempt failed; the cron retries on the next day.",
    )
    grandfathered = fields.Boolean(
        tracking=True,
        help="Keep the current line prices: new price versions of the plan do not apply.",
    )
    fiscal_position_id = fields.Many2one(
        "account.fiscal.position",
        compute="_compute_fiscal_position_id",
        store=True,
        readonly=False,
        check_company=True,
    )
    payment_term_id = fields.Many2one(
        "account.payment.term",
        compute="_compute_payment_term_id",
        store=True,
        readonly=False,
        check_company=True,
    )
    invoice_ids = fields.One2many("account.move", "flex_subscription_id", string="Invoices")
    invoice_count = fields.Integer(compute="_compute_invoice_count")
    recurring_total = fields.Monetary(
        string="Recurring Amount",
        compute="_compute_recurring_total",
        store=True,
        help="Untaxed amount of one billing period.",
    )
    mrr = fields.Monetary(
        string="MRR",
        compute="_compute_recurring_total",
        store=True,
        help="Monthly recurring revenue: the recurring amount normalised to one month.",
    )
    commitment_end_date = fields.Date(compute="_compute_commitment_end_date", store=True)
    earliest_end_date = fields.Date(
        compute="_compute_end_rule",
        help="If a cancellation were requested today, the service would end on this day.",
    )
    end_rule = fields.Char(compute="_compute_end_rule", string="Cancellation Rule")
    end_rule_summary = fields.Char(compute="_compute_end_rule", string="Cancellation Summary")
    billing_period_label = fields.Char(related="plan_id.period_label")

    _sql_constraints = [
        (
            "name_company_unique",
            "UNIQUE(name, company_id)",
            "Subscription references must be unique.",
        ),
    ]

    # ------------------------------------------------------------------ computes

    @api.model
    def _group_expand_states(self, states, domain):
        return [key for key, _label in self._fields["state"].selection]

    @api.depends("company_id")
    def _compute_currency_id(self):
        for sub in self:
            if not sub.currency_id:
                sub.currency_id = sub.company_id.currency_id or self.env.company.currency_id

    @api.depends("partner_id", "company_id")
    def _compute_fiscal_position_id(self):
        for sub in self:
            if sub.partner_id:
                sub.fiscal_position_id = (
                    self.env["account.fiscal.position"]
                    .with_company(sub.company_id)
                    ._get_fiscal_position(sub.partner_id)
                )
            else:
                sub.fiscal_position_id = False

    @api.depends("partner_id", "company_id")
    def _compute_payment_term_id(self):
        for sub in self:
            sub.payment_term_id = sub.partner_id.with_company(
                sub.company_id
            ).property_payment_term_id

    def _compute_invoice_count(self):
        counts = dict(
            self.env["account.move"]._read_group(
                [("flex_subscription_id", "in", self.ids)], ["flex_subscription_id"], ["__count"]
            )
        )
        for sub in self:
            sub.invoice_count = counts.get(sub, 0)

    @api.depends(
        "line_ids.price_subtotal", "plan_id.billing_interval", "plan_id.billing_unit", "state"
    )
    def _compute_recurring_total(self):
        for sub in self:
            total = sum(sub.line_ids.mapped("price_subtotal"))
            sub.recurring_total = total
            # Revenue counts once billed: not during a trial, not while paused.
            running = sub.state in ("active", "to_close") and sub.plan_id
            sub.mrr = (
                sub.currency_id.round(total / sub.plan_id.months_per_period()) if running else 0.0
            )

    @api.depends("start_date", "plan_id.commitment_length", "plan_id.commitment_unit")
    def _compute_commitment_end_date(self):
        for sub in self:
            plan = sub.plan_id
            if sub.start_date and plan.commitment_length:
                sub.commitment_end_date = P.add_interval(
                    sub.start_date, plan.commitment_length, plan.commitment_unit
                )
            else:
                sub.commitment_end_date = False

    @api.depends(
        "next_period_start",
        "billing_anchor_date",
        "end_date",
        "state",
        "plan_id.billing_interval",
        "plan_id.billing_unit",
        "plan_id.invoicing_timing",
    )
    def _compute_next_invoice_date(self):
        for sub in self:
            period = sub._next_period()
            if not period or sub.state in ("draft", "closed"):
                sub.next_invoice_date = False
            else:
                sub.next_invoice_date = (
                    period.start if sub.plan_id.invoicing_timing == "advance" else period.end
                )

    @api.depends_context("flex_today")
    @api.depends(
        "start_date",
        "state",
        "end_date",
        "term_end_date",
        "billing_anchor_date",
        "plan_id.commitment_length",
        "plan_id.commitment_unit",
        "plan_id.notice_length",
        "plan_id.notice_unit",
        "plan_id.term_type",
    )
    def _compute_end_rule(self):
        units = dict(PERIOD_UNITS)
        today = self._today()
        for sub in self:
            plan = sub.plan_id
            parts = []
            if plan.commitment_length:
                parts.append(
                    self.env._(
                        "minimum term %(length)s %(unit)s",
                        length=plan.commitment_length,
                        unit=units[plan.commitment_unit].lower(),
                    )
                )
            if plan.notice_length:
                parts.append(
                    self.env._(
                        "notice %(length)s %(unit)s",
                        length=plan.notice_length,
                        unit=units[plan.notice_unit].lower(),
                    )
                )
            if plan.term_type == "fixed":
                parts.append(self.env._("ends at the end of a term"))
            else:
                parts.append(self.env._("ends at the end of a billing period"))
            sub.end_rule = ", ".join(parts).capitalize() if plan else False
            if sub.state == "closed" or not plan or not sub.start_date:
                sub.earliest_end_date = False
            elif sub.end_date and sub.state == "to_close":
                sub.earliest_end_date = sub.end_date
            else:
                sub.earliest_end_date = sub._compute_earliest_end(today)
            sub.end_rule_summary = sub._end_rule_sentence()

    # ------------------------------------------------------------ constraints

    @api.constrains("line_ids", "state")
    def _check_lines(self):
        for sub in self:
            if sub.state != "draft" and not sub.line_ids:
                raise ValidationError(
                    self.env._("Subscription %(name)s needs at least one line.", name=sub.name)
                )

    @api.constrains("company_id", "currency_id", "plan_id")
    def _check_plan_company(self):
        for sub in self:
            if sub.plan_id.company_id and sub.plan_id.company_id != sub.company_id:
                raise ValidationError(
                    self.env._(
                        "Plan %(plan)s belongs to another company.", plan=sub.plan_id.display_name
                    )
                )

    # ------------------------------------------------------------------ CRUD

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("name", "/") == "/":
                company = self.env["res.company"].browse(vals.get("company_id")) or self.env.company
                vals["name"] = (
                    self.env["ir.sequence"].with_company(company).next_by_code("flex.subscription")
                    or "/"
                )
        return super().create(vals_list)

    @api.ondelete(at_uninstall=False)
    def _unlink_only_drafts(self):
        if any(sub.state != "draft" for sub in self):
            raise UserError(
                self.env._("Only draft subscriptions can be deleted; close the others instead.")
            )

    # --------------------------------------------------------------- onchanges

    @api.onchange("plan_id")
    def _onchange_plan_id(self):
        """Fill the lines from the plan's template lines (not the optional add-ons)."""
        if not self.plan_id or self.state != "draft":
            return
        commands = [fields.Command.clear()]
        for tmpl in self.plan_id.line_ids.filtered(lambda line: not line.optional):
            commands.append(
                fields.Command.create(
                    {
                        "product_id": tmpl.product_id.id,
                        "name": tmpl.name or False,
                        "quantity": tmpl.quantity,
                    }
                )
            )
        self.line_ids = commands

    # ---------------------------------------------------------------- actions

    def action_confirm(self):
        """Start the subscription: trial when the plan has one, active otherwise."""
        for sub in self:
            if sub.state != "draft":
                raise UserError(self.env._("Only draft subscriptions can be started."))
            if not sub.line_ids:
                raise UserError(
                    self.env._(
                        "Add at least one line to %(name)s before starting it.", name=sub.name
                    )
                )
            plan = sub.plan_id
            trial_end = P.add_interval(sub.start_date, plan.trial_length, plan.trial_unit)
            vals = {
                "trial_end_date": trial_end if plan.trial_length else False,
                "billing_anchor_date": trial_end,
                "next_period_start": trial_end,
                "state": "trial" if plan.trial_length else "active",
            }
            if plan.term_type == "fixed":
                term_end = P.add_interval(sub.start_date, plan.term_length, plan.term_unit)
                vals["term_end_date"] = term_end
                if not plan.auto_renew:
                    vals["end_date"] = term_end
            sub.with_context(flex_mrr_day=trial_end).write(vals)
            sub.line_ids._refresh_price(trial_end)
        return True

    def action_pause(self):
        for sub in self:
            if sub.state not in ("active", "trial"):
                raise UserError(
                    self.env._(
                        "Only running subscriptions can be paused (%(name)s is not).", name=sub.name
                    )
                )
        self.write({"state": "paused", "pause_date": self._today()})
        return True

    def action_resume(self):
        """Resume billing. Periods that started during the pause are not billed: if the
        pause outlasted the paid period, billing restarts today on a new anchor."""
        today = self._today()
        for sub in self:
            if sub.state != "paused":
                raise UserError(self.env._("Only paused subscriptions can be resumed."))
            vals = {"state": "active", "pause_date": False}
            if sub.next_period_start and sub.next_period_start < today:
                vals.update(billing_anchor_date=today, next_period_start=today)
            if sub.end_date and sub.end_date <= today and sub.plan_id.term_type == "evergreen":
                vals["state"] = "to_close"
            sub.write(vals)
            sub.message_post(
                body=self.env._(
                    "Subscription resumed; billing restarts on %(date)s.",
                    date=format_date(self.env, sub.next_period_start),
                )
            )
        return True

    def action_open_close_wizard(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "flex.subscription.close.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_subscription_id": self.id},
        }

    def action_request_close(self, reason=None, requested_date=None, note=None):
        """Schedule the end of the subscription at the earliest date the rules allow
        (or ``requested_date`` when later). Billing runs until then."""
        today = self._today()
        for sub in self:
            if sub.state not in ("trial", "active", "paused"):
                raise UserError(
                    self.env._("%(name)s cannot be cancelled in its current state.", name=sub.name)
                )
            if sub.state == "trial":
                # A trial ends right away: nothing has been paid for yet.
                sub._close(today, reason, note)
                sub._send_event_reminder("cancellation", sub, f"cancel-{today.isoformat()}")
                continue
            end = sub._compute_earliest_end(today)
            if requested_date and requested_date > end:
                end = sub._compute_earliest_end(requested_date, notice_from=today)
            if sub.state == "paused" and end <= today:
                sub._close(today, reason, note)
                sub._send_event_reminder("cancellation", sub, f"cancel-{today.isoformat()}")
                continue
            sub.write(
                {
                    "state": "to_close",
                    "end_date": end,
                    "close_reason_id": reason.id if reason else False,
                    "close_note": note,
                }
            )
            sub.message_post(
                body=self.env._(
                    "Cancellation requested; the service ends on %(date)s (last day of service "
                    "%(last)s).",
                    date=format_date(self.env, end),
                    last=format_date(self.env, end - timedelta(days=1)),
                )
            )
            sub._send_event_reminder("cancellation", sub, f"cancel-{end.isoformat()}")
        return True

    def action_undo_close(self):
        for sub in self:
            if sub.state != "to_close":
                raise UserError(self.env._("Only a scheduled cancellation can be undone."))
            plan = sub.plan_id
            keep_end = plan.term_type == "fixed" and not plan.auto_renew
            sub.write(
                {
                    "state": "active",
                    "end_date": sub.term_end_date if keep_end else False,
                    "close_reason_id": False,
                    "close_note": False,
                }
            )
            sub.message_post(body=self.env._("Scheduled cancellation undone."))
        return True

    def action_close_now(self, reason=None):
        """Close immediately, regardless of commitment and notice (manager override).
        No credit is issued here: refunds of the unused part are a change request."""
        if not self.env.user.has_group("subscription_flex.group_flex_manager"):
            raise UserError(self.env._("Only subscription managers can close immediately."))
        today = self._today()
        if any(sub.state in ("draft", "closed") for sub in self):
            raise UserError(self.env._("Only running subscriptions can be closed."))
        for sub in self:
            reason = reason or sub.close_reason_id
            if (
                sub.has_metered_lines
                and sub.state in ("active", "to_close")
                and sub.plan_id.invoicing_timing == "advance"
            ):
                # Usage recorded since the last invoice is still owed: bill it on a final
                # invoice, which closes the subscription (see _update_lifecycle).
                sub.write({"end_date": today, "close_reason_id": reason.id})
                if sub._needs_final_usage_invoice(today):
                    sub._create_recurring_invoices(today)
            if sub.state != "closed":
                sub._close(today, reason)
        return True

    def action_create_invoices(self):
        """Button: invoice every period due today (same path as the cron)."""
        due = self.filtered(lambda sub: sub.state in BILLABLE_STATES)
        if not due:
            raise UserError(self.env._("Nothing to invoice: the subscription is not running."))
        moves = due._create_recurring_invoices(self._today())
        if not moves:
            raise UserError(
                self.env._(
                    "Nothing is due yet: the next invoice is due on %(date)s.",
                    date=format_date(self.env, self[:1].next_invoice_date),
                )
            )
        return self._action_view_moves(moves)

    def action_view_invoices(self):
        self.ensure_one()
        return self._action_view_moves(self.invoice_ids)

    def _action_view_moves(self, moves):
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "account.action_move_out_invoice_type"
        )
        action["domain"] = [("id", "in", moves.ids)]
        action["context"] = {"default_move_type": "out_invoice", "create": False}
        if len(moves) == 1:
            action["views"] = [(self.env.ref("account.view_move_form").id, "form")]
            action["res_id"] = moves.id
        return action

    # ------------------------------------------------------- business methods

    @api.model
    def _today(self):
        """Today in the user's timezone; tests and simulations pass ``flex_today``."""
        today = self.env.context.get("flex_today")
        return fields.Date.to_date(today) if today else fields.Date.context_today(self)

    def _next_period(self):
        """The next period to invoice, cut at ``end_date``; ``None`` when there is none."""
        self.ensure_one()
        if not (self.next_period_start and self.billing_anchor_date and self.plan_id):
            return None
        if self.end_date and self.next_period_start >= self.end_date:
            return None
        plan = self.plan_id
        period = P.period_containing(
            self.billing_anchor_date,
            plan.billing_interval,
            plan.billing_unit,
            self.next_period_start,
        )
        end = min(period.end, self.end_date) if self.end_date else period.end
        return P.Period(self.next_period_start, end)

    def _compute_earliest_end(self, today, notice_from=None):
        """Earliest end (exclusive) of the service if cancellation is asked ``today``."""
        self.ensure_one()
        plan = self.plan_id
        notice_start = notice_from or today
        commitment = (plan.commitment_length, plan.commitment_unit)
        notice_end = P.add_interval(notice_start, plan.notice_length, plan.notice_unit)
        earliest_day = max(today, notice_end)
        if plan.term_type == "fixed":
            # Terms are the boundaries: a fixed-term subscription ends at a term's end.
            return P.earliest_end_date(
                self.start_date,
                earliest_day,
                commitment,
                (0, "day"),
                self.start_date,
                plan.term_length,
                plan.term_unit,
            )
        anchor = self.billing_anchor_date or self.start_date
        return P.earliest_end_date(
            self.start_date,
            earliest_day,
            commitment,
            (0, "day"),
            anchor,
            plan.billing_interval,
            plan.billing_unit,
        )

    def _end_rule_sentence(self):
        self.ensure_one()
        if not self.end_rule or self.state in ("draft", "closed"):
            return False
        scheduled = self.state == "to_close" or (self.end_date and self.state != "paused")
        end = self.end_date if scheduled else self.earliest_end_date
        if not end:
            return self.env._("%(rule)s.", rule=self.end_rule)
        values = {
            "rule": self.end_rule,
            "date": format_date(self.env, end),
            "last": format_date(self.env, end - timedelta(days=1)),
        }
        if scheduled:
            return self.env._(
                "%(rule)s. The service ends on %(date)s (last day of service: %(last)s).",
                **values,
            )
        return self.env._(
            "%(rule)s. If cancelled today, the service would end on %(date)s "
            "(last day of service: %(last)s).",
            **values,
        )

    def _close(self, day, reason=None, note=None):
        self.ensure_one()
        self.with_context(flex_mrr_day=day).write(
            {
                "state": "closed",
                "close_date": day,
                "end_date": self.end_date if self.end_date and self.end_date <= day else day,
                "close_reason_id": (reason or self.close_reason_id).id,
                "close_note": note or self.close_note,
            }
        )

    def _get_due_periods(self, today):
        self.ensure_one()
        if self.state not in BILLABLE_STATES or not self.next_period_start:
            return []
        plan = self.plan_id
        return P.due_periods(
            self.billing_anchor_date,
            plan.billing_interval,
            plan.billing_unit,
            self.next_period_start,
            today,
            plan.invoicing_timing,
            stop=self.end_date or None,
        )

    def _get_invoice_journal(self):
        self.ensure_one()
        journal = self.plan_id.journal_id
        if journal and journal.company_id == self.company_id:
            return journal
        return self.env["account.journal"].search(
            [
                *self.env["account.journal"]._check_company_domain(self.company_id),
                ("type", "=", "sale"),
            ],
            limit=1,
        )

    def _prepare_invoice_vals(self, period, lines_vals, journal, kind="recurring"):
        """Values of one customer invoice for ``period`` (a :class:`core.periods.Period`).
        ``kind`` ``usage_final``: the last usage of an ended subscription billed in advance
        (``period`` is then the usage window, invoiced on the end date)."""
        self.ensure_one()
        timing = self.plan_id.invoicing_timing
        invoice_date = period.start if timing == "advance" else period.end
        if kind == "usage_final":
            invoice_date = period.end
        return {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "company_id": self.company_id.id,
            "currency_id": self.currency_id.id,
            "journal_id": journal.id,
            "invoice_date": invoice_date,
            "invoice_origin": self.name,
            "invoice_user_id": self.user_id.id,
            "fiscal_position_id": self.fiscal_position_id.id,
            "invoice_payment_term_id": self.payment_term_id.id,
            "flex_subscription_id": self.id,
            "flex_billing_kind": kind,
            "flex_period_start": period.start,
            "flex_period_end": period.last_day,
            "invoice_line_ids": [fields.Command.create(vals) for vals in lines_vals],
            # What _post would set move by move (one write per invoice) when the journal
            # auto-checks on post; see account.move._flex_finalize.
            **(
                {"checked": True}
                if self.plan_id.invoicing_mode in ("post", "send") and journal.autocheck_on_post
                else {}
            ),
        }

    def _add_invoice_line_amounts(self, lines_vals, lines_taxes):
        """Put the journal amounts of the product lines in their values, computed by Odoo's
        own tax engine as account.move's tax sync does, so ``account.move.create`` need not
        write them back line by line. Only a hint: every line being taxed, the sync
        recomputes them anyway and writes whatever differs; with an untaxed line or
        another currency (rates) the values are left to Odoo."""
        self.ensure_one()
        company = self.company_id
        if self.currency_id != company.currency_id or not all(lines_taxes):
            return
        Product = self.env["product.product"]
        base_lines = self._tax_base_lines(
            [
                (
                    Product.browse(vals["product_id"]),
                    taxes,
                    vals["price_unit"],
                    vals["quantity"],
                    vals["discount"],
                )
                for vals, taxes in zip(lines_vals, lines_taxes, strict=True)
            ],
            sign=-1,
        )
        for vals, base_line in zip(lines_vals, base_lines, strict=True):
            details = base_line["tax_details"]
            vals["amount_currency"] = -(
                details["total_excluded_currency"] + details["delta_total_excluded_currency"]
            )
            vals["balance"] = -(details["total_excluded"] + details["delta_total_excluded"])

    @api.model
    def _invoice_line_vals(self, kind, product, name, quantity, price_unit, account, taxes, **vals):
        """Values of one subscription invoice line (``kind``: recurring, usage, proration);
        ``vals`` add or override (unit of measure, discount, subscription line, service
        dates...)."""
        return {
            "display_type": "product",
            "product_id": product.id,
            "product_uom_id": product.uom_id.id,
            "name": name,
            "quantity": quantity,
            "price_unit": price_unit,
            "discount": 0.0,
            "account_id": account.id,
            "tax_ids": [fields.Command.set(taxes.ids)],
            "flex_line_kind": kind,
            **vals,
        }

    def _tax_base_lines(self, lines, sign=1):
        """Odoo's tax engine on ``lines`` (``(product, taxes, price_unit, quantity,
        discount)``) in the subscription's currency, as an invoice computes them: base lines
        with their rounded ``tax_details``."""
        self.ensure_one()
        AccountTax = self.env["account.tax"]
        base_lines = [
            AccountTax._prepare_base_line_for_taxes_computation(
                None,
                product_id=product,
                tax_ids=taxes,
                price_unit=price_unit,
                quantity=quantity,
                discount=discount,
                currency_id=self.currency_id,
                rate=1.0,
                sign=sign,
                is_refund=False,
            )
            for product, taxes, price_unit, quantity, discount in lines
        ]
        AccountTax._add_tax_details_in_base_lines(base_lines, self.company_id)
        AccountTax._round_base_lines_tax_details(base_lines, self.company_id)
        return base_lines

    def _prepare_invoice_line_vals(self, line, period, price_unit, accounts, taxes):
        return self._invoice_line_vals(
            "recurring",
            line.product_id,
            line._get_invoice_label(period),
            line.quantity,
            price_unit,
            accounts,
            taxes,
            product_uom_id=line.product_uom_id.id,
            discount=line.discount,
            flex_subscription_line_id=line.id,
            flex_period_start=period.start,
            flex_period_end=period.last_day,
            **(
                {"analytic_distribution": line.analytic_distribution}
                if line.analytic_distribution
                else {}
            ),
        )

    @api.model
    def _collect_price_requests(self, due):
        """Price-version look-ups needed by the recurring lines of ``due`` invoices."""
        requests = []
        for sub, slots in due.items():
            if sub.grandfathered:
                continue
            for line in sub.line_ids.filtered(lambda line: not line.price_overridden):
                requests.extend(
                    (sub.plan_id.id, line.product_id.id, sub.currency_id.id, period.start)
                    for period, kind in slots
                    if kind == "recurring"
                )
        return requests

    def _prepare_base_lines(self, period, kind, prices, journal, accounts_for):
        """Recurring (not metered) lines of one invoice, priced with the version valid on
        the period's first day: ``(lines_vals, lines_taxes)``."""
        self.ensure_one()
        lines_vals, lines_taxes = [], []
        for line in self.line_ids:
            product = line.product_id
            if not product.active:
                raise UserError(
                    self.env._("Product %(product)s is archived.", product=product.display_name)
                )
            if product.flex_metered or kind != "recurring":
                continue  # rated from usage
            price = line.price_unit
            if not line.price_overridden and not self.grandfathered:
                versioned = prices.get(
                    (self.plan_id.id, product.id, self.currency_id.id, period.start)
                )
                if versioned is not None:
                    price = versioned
            account, taxes = accounts_for(line, journal)
            vals = self._prepare_invoice_line_vals(line, period, price, account, taxes)
            if (
                line.terms_start
                and period.start < line.terms_start < period.end
                and self.plan_id.invoicing_timing == "arrears"
            ):
                # In arrears, a change split this period: these terms are billed for the
                # days they were in force (the earlier terms were billed by the change).
                self._prorate_line_vals(vals, line, period, price)
            lines_vals.append(vals)
            lines_taxes.append(taxes)
        return lines_vals, lines_taxes

    def _prorate_line_vals(self, vals, line, period, price):
        terms = proration.Terms(
            to_decimal(price), to_decimal(line.quantity), to_decimal(line.discount)
        )
        amount = proration.prorate_span(
            terms, period, line.terms_start, period.end, self.currency_id.decimal_places
        )
        segment = P.Period(line.terms_start, period.end)
        vals.update(
            name=self._proration_label(
                {
                    "name": line.name,
                    "product": line.product_id,
                    "kind": "charge",
                    "quantity": line.quantity,
                    "price_unit": price,
                    "discount": line.discount,
                    "days": segment.days,
                    "period_days": period.days,
                    "start": segment.start,
                    "end": segment.end,
                }
            ),
            quantity=1.0,
            price_unit=float(amount),
            discount=0.0,
            flex_period_start=segment.start,
        )

    def _prepare_invoices_vals(self, today):
        """Invoice values for every period due in ``self``.

        Returns ``(vals_list, errors, skipped)``: ``errors`` maps a subscription to the
        message that kept it from being invoiced (archived product, missing account, ...),
        so one broken subscription never blocks the batch; ``skipped`` lists the periods
        that had nothing to bill.
        """
        vals_list, errors, skipped = [], {}, defaultdict(list)
        due = {}
        for sub in self:
            slots = [(period, "recurring") for period in sub._get_due_periods(today)]
            if sub._needs_final_usage_invoice(today):
                slots.append((P.Period(sub.usage_billed_until, sub.end_date), "usage_final"))
            if slots:
                due[sub] = slots
        # One price query for the whole batch.
        requests = self._collect_price_requests(due)
        prices = self.env["flex.price"]._get_price_map(requests)
        accounts_cache, journals = {}, {}

        def journal_for(sub):
            key = (sub.company_id.id, sub.plan_id.journal_id.id)
            if key not in journals:
                journals[key] = sub._get_invoice_journal()
            return journals[key]

        def accounts_for(line, journal):
            sub = line.subscription_id
            cache_key = (line.product_id.id, sub.company_id.id, sub.fiscal_position_id.id)
            if cache_key not in accounts_cache:
                accounts_cache[cache_key] = line._get_income_account(journal)
            return accounts_cache[cache_key], line._get_taxes()

        # Usage of every invoice of the batch, rated in one SQL aggregation.
        cuts = {
            (sub, period.start, kind): period.end
            if kind == "usage_final"
            else sub._usage_cut(period)
            for sub, slots in due.items()
            for period, kind in slots
        }
        usage_lines = self._prepare_usage_lines(cuts, journal_for, accounts_for)
        # Proration of changes made "for the next invoice" goes on the first recurring
        # invoice of the batch.
        pending = (
            self.env["flex.subscription.change.item"]
            .search(
                [
                    ("subscription_id", "in", [sub.id for sub in due]),
                    ("state", "=", "pending"),
                    ("change_id.state", "=", "applied"),
                ]
            )
            .grouped("subscription_id")
        )
        Tax = self.env["account.tax"]
        for sub, slots in due.items():
            try:
                journal = journal_for(sub)
                if not journal:
                    raise UserError(
                        self.env._(
                            "No sales journal in company %(company)s.", company=sub.company_id.name
                        )
                    )
                for period, kind in slots:
                    lines_vals, lines_taxes = sub._prepare_base_lines(
                        period, kind, prices, journal, accounts_for
                    )
                    for usage_vals in usage_lines.get((sub, period.start, kind), []):
                        lines_vals.append(usage_vals)
                        lines_taxes.append(Tax.browse(usage_vals["tax_ids"][0][2]))
                    if kind == "recurring" and sub in pending:
                        item_vals, item_taxes = sub._prepare_item_line_vals(
                            pending.pop(sub), journal
                        )
                        lines_vals += item_vals
                        lines_taxes += item_taxes
                    if not lines_vals:
                        # Nothing to bill (a usage-only plan with no usage yet): the period
                        # passes without an invoice.
                        skipped[sub].append((period, kind))
                        continue
                    sub._add_invoice_line_amounts(lines_vals, lines_taxes)
                    vals_list.append(sub._prepare_invoice_vals(period, lines_vals, journal, kind))
            except (UserError, ValidationError) as error:
                errors[sub] = str(error.args[0] if error.args else error)
        return vals_list, errors, skipped

    def _create_recurring_invoices(self, today):
        """Create (and post/send as the plan says) every invoice due in ``self``.

        Fast path: one ``account.move.create`` for the whole batch. When it fails, the
        batch is retried one subscription at a time inside savepoints so the culprit is
        isolated, logged on its chatter with an activity, and the others go through.
        The partial unique index on ``account_move`` (subscription, period start) makes
        a second invoice for the same period impossible, whatever the caller does.
        """
        vals_list, errors, skipped = self._prepare_invoices_vals(today)
        Move = self.env["account.move"].with_context(
            default_move_type="out_invoice",
            mail_create_nolog=True,
            tracking_disable=True,
            mail_notrack=True,
        )
        # New draft lines have no analytic items to resync: skip the per-line rewrite of
        # analytic_distribution that setting account_id triggers (one write per line).
        # Creation only: posting must create the analytic items as usual.
        MoveCreate = Move.with_context(skip_analytic_sync=True)
        by_sub = defaultdict(list)
        for vals in vals_list:
            by_sub[vals["flex_subscription_id"]].append(vals)
        moves = self.env["account.move"]
        try:
            with self.env.cr.savepoint():
                moves = MoveCreate.create(vals_list).with_env(Move.env)
                moves._flex_finalize()
        except Exception:  # noqa: BLE001 - isolate the culprit below, never lose the batch
            _logger.info(
                "Batch invoicing failed; retrying subscription by subscription", exc_info=True
            )
            moves = self.env["account.move"]
            for sub_id, sub_vals in by_sub.items():
                sub = self.browse(sub_id)
                try:
                    with self.env.cr.savepoint():
                        sub_moves = MoveCreate.create(sub_vals).with_env(Move.env)
                        sub_moves._flex_finalize()
                    moves |= sub_moves
                except Exception as error:  # noqa: BLE001 - logged on the subscription
                    self.env.invalidate_all()
                    errors[sub] = str(
                        getattr(error, "args", [error])[0]
                        if getattr(error, "args", None)
                        else error
                    )
        if moves:
            self._mark_usage_invoiced(moves)
            moves.line_ids.flex_change_item_id._sync_state()
            moves.invoice_line_ids._flex_link_sale_lines()
        for sub in skipped:
            if sub not in errors:
                sub._advance_skipped_slots(skipped[sub])
        done_subs = self.browse({m.flex_subscription_id.id for m in moves})
        if done_subs:
            done_subs._advance_after_invoicing(moves)
        if errors:
            self._log_invoicing_errors(errors)
        # Lifecycle transitions that invoicing unlocks (trial over, end reached).
        self.filtered(lambda s: s.state in BILLABLE_STATES)._update_lifecycle(today)
        return moves

    def _advance_after_invoicing(self, moves):
        last_end = defaultdict(list)
        usage_until = {}
        for move in moves:
            sub = move.flex_subscription_id
            cut = (
                move.flex_period_end + timedelta(days=1)
                if move.flex_billing_kind == "usage_final"
                or sub.plan_id.invoicing_timing == "arrears"
                else move.flex_period_start
            )
            usage_until[sub] = max(usage_until.get(sub, cut), cut)
            if move.flex_billing_kind == "recurring":
                last_end[sub.id].append(move.flex_period_end)
        for sub, cut in usage_until.items():
            if sub.has_metered_lines and (
                not sub.usage_billed_until or cut > sub.usage_billed_until
            ):
                sub.usage_billed_until = cut
        self._sync_line_prices(moves)
        # One write per distinct set of values (a batch mostly shares one next period
        # start) instead of one per subscription: the recomputation of next_invoice_date
        # and its tracking then run once over the group.
        groups = defaultdict(list)
        for sub in self:
            next_start = max(last_end[sub.id]) + timedelta(days=1) if last_end.get(sub.id) else None
            groups[next_start].append(sub.id)
        for next_start, sub_ids in groups.items():
            vals = {"invoicing_error": False, "invoicing_error_date": False}
            if next_start:
                vals["next_period_start"] = next_start
            self.browse(sub_ids).write(vals)

    def _sync_line_prices(self, moves):
        """Show on the subscription the price its latest invoice charged: after a new
        price version starts, the lines display it (custom and grandfathered prices
        never change). Writes only the lines whose price moved."""
        latest = {}
        for move in moves.filtered(lambda m: m.flex_billing_kind == "recurring"):
            sub = move.flex_subscription_id
            if sub.grandfathered:
                continue
            if sub not in latest or move.flex_period_start > latest[sub].flex_period_start:
                latest[sub] = move
        repriced = defaultdict(lambda: self.browse())
        for move in latest.values():
            for inv_line in move.invoice_line_ids:
                line = inv_line.flex_subscription_line_id
                if (
                    inv_line.flex_line_kind == "recurring"
                    and line
                    and not line.price_overridden
                    and line.price_unit != inv_line.price_unit
                ):
                    line.price_unit = inv_line.price_unit
                    repriced[move.flex_period_start] |= move.flex_subscription_id
        # A new price version moves the MRR from the period it starts.
        for day, subs in repriced.items():
            subs._record_mrr(day)

    def _log_invoicing_errors(self, errors):
        today = self._today()
        for sub, message in errors.items():
            sub.write({"invoicing_error": message, "invoicing_error_date": today})
        activity_type = self.env.ref("mail.mail_activity_data_warning", raise_if_not_found=False)
        summary = self.env._("Invoicing failed")
        for sub, message in errors.items():
            body = self.env._("Recurring invoicing failed: %(error)s", error=message)
            sub.message_post(body=body)
            if summary not in sub.activity_ids.mapped("summary"):
                sub.activity_schedule(
                    activity_type_id=activity_type.id if activity_type else False,
                    summary=summary,
                    note=body,
                    user_id=(sub.user_id or self.env.user).id,
                )

    def _update_lifecycle(self, today):
        """Trial end, fixed-term renewal and closing, as of ``today``."""
        for sub in self:
            plan = sub.plan_id
            if sub.state == "trial" and sub.trial_end_date and sub.trial_end_date <= today:
                sub.with_context(flex_mrr_day=sub.trial_end_date).state = "active"
            if (
                plan.term_type == "fixed"
                and plan.auto_renew
                and sub.term_end_date
                and sub.state in ("active", "paused")
            ):
                term_end = sub.term_end_date
                renewals = 0
                while term_end <= today:
                    term_end = P.add_interval(term_end, plan.term_length, plan.term_unit)
                    renewals += 1
                if renewals:
                    sub.term_end_date = term_end
                    sub.message_post(
                        body=self.env._(
                            "Term renewed until %(date)s.",
                            date=format_date(self.env, term_end - timedelta(days=1)),
                        )
                    )
            if (
                sub.end_date
                and sub.end_date <= today
                and sub.state in ("active", "to_close")
                and not sub._next_period()
            ):
                if sub._needs_final_usage_invoice(today):
                    # Bills the last usage, then comes back here to close.
                    sub._create_recurring_invoices(today)
                    continue
                reason = sub.close_reason_id
                if not reason and plan.term_type == "fixed":
                    reason = self.env.ref("subscription_flex.close_reason_end_of_term")
                sub._close(sub.end_date, reason)

    # ------------------------------------------------------------------- crons

    @api.model
    def _get_subscriptions_to_invoice_domain(self, today):
        """Due subscriptions; one that failed today waits for tomorrow (or the button)."""
        return [
            ("state", "in", BILLABLE_STATES),
            ("next_invoice_date", "<=", today),
            "|",
            ("invoicing_error_date", "=", False),
            ("invoicing_error_date", "<", today),
        ]

    @api.model
    def _lock_due_subscriptions(self, today, limit):
        """Ids of due subscriptions locked by this transaction, skipping those another
        worker holds: several cron workers share the work without doing anything twice.
        Raw SQL because the ORM has no ``FOR UPDATE SKIP LOCKED``."""
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT id FROM flex_subscription
             WHERE state IN %s AND next_invoice_date <= %s
               AND (invoicing_error_date IS NULL OR invoicing_error_date < %s)
             ORDER BY next_invoice_date, id
             LIMIT %s
               FOR UPDATE SKIP LOCKED
            """,
            (BILLABLE_STATES, today, today, limit),
        )
        return [row[0] for row in self.env.cr.fetchall()]

    @api.model
    def _cron_create_invoices(self, batch_size=100):
        """Invoice one batch of due subscriptions; Odoo's cron runner commits and calls
        again while ``remaining`` is positive (``ir.cron._notify_progress``)."""
        today = self._today()
        started = time.time()
        ids = self._lock_due_subscriptions(today, batch_size)
        subs = self.browse(ids)
        for company, company_subs in subs.grouped("company_id").items():
            company_subs.with_company(company)._create_recurring_invoices(today)
        remaining = self.search_count(self._get_subscriptions_to_invoice_domain(today))
        if subs:
            _logger.info(
                "Recurring invoicing: %s subscriptions invoiced, %s due", len(subs), remaining
            )
        Cron = self.env["ir.cron"]
        if subs and remaining and Cron._flex_out_of_time(time.time() - started):
            # Near Odoo's time limit: this run ends here, a new one starts at once.
            Cron._flex_yield_run()
            remaining = 0
        Cron._notify_progress(done=len(subs), remaining=remaining if subs else 0)
        if subs and remaining:
            self.env["ir.cron"]._flex_wake_lanes()
        return subs

    @api.model
    def _cron_update_lifecycle(self):
        today = self._today()
        subs = self.search(
            [
                "|",
                "|",
                "&",
                ("state", "=", "trial"),
                ("trial_end_date", "<=", today),
                "&",
                ("state", "in", ("active", "to_close")),
                ("end_date", "<=", today),
                "&",
                ("state", "in", ("active", "paused")),
                ("term_end_date", "<=", today),
            ]
        )
        for batch in split_every(500, subs.ids, self.browse):
            batch._update_lifecycle(today)
        self._cron_sync_mrr()
        return subs
