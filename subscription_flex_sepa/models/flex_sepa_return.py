"""Rejected and returned direct debits, and what to do about each reason code.

A reject (pain.002, before settlement) and a return or refund (camt.053/054, after
settlement) both give the invoice back to the customer: the collection's payment is
undone (``rejected``), the invoice is open again, and the reason code's policy says what
happens next: a bounded retry in a later batch, the mandate suspended (the customer is
asked for a new one), a dispute, or the accountant decides."""

from datetime import timedelta

from psycopg2.extras import execute_values

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..core import bankfiles

POLICY_ACTIONS = [
    ("retry", "Retry in a later batch"),
    ("suspend", "Suspend the mandate, ask for a new one"),
    ("close", "Close the mandate"),
    ("dispute", "Flag a dispute"),
    ("manual", "Leave to the accountant"),
]


class FlexSepaReturnReason(models.Model):
    _name = "flex.sepa.return.reason"
    _description = "SEPA Return Reason Policy"
    _order = "code"
    _rec_name = "code"

    code = fields.Char(required=True, help="ISO 20022 external status / return reason code")
    name = fields.Char(string="Meaning", required=True, translate=True)
    company_id = fields.Many2one(
        "res.company", help="Leave empty for every company; a company's own policy wins."
    )
    action = fields.Selection(POLICY_ACTIONS, required=True, default="manual")
    max_retries = fields.Integer(
        default=2, help="Retries after which the accountant takes over (retry policy)."
    )
    retry_delay_days = fields.Integer(
        default=5, help="A retry is collected no earlier than this many days after the return."
    )
    notify_customer = fields.Boolean(default=True, string="E-mail the Customer")
    create_activity = fields.Boolean(
        default=True,
        string="Activity for the Accountant",
        help="Retries only get one once their number is exhausted.",
    )
    active = fields.Boolean(default=True)

    _sql_constraints = [
        (
            "code_company_unique",
            "UNIQUE NULLS NOT DISTINCT (code, company_id)",
            "One policy per reason code and company.",
        ),
        (
            "retries_positive",
            "CHECK (max_retries >= 0 AND retry_delay_days >= 0)",
            "Retries and their delay cannot be negative.",
        ),
    ]

    @api.depends("code", "name")
    def _compute_display_name(self):
        for reason in self:
            reason.display_name = f"{reason.code} {reason.name or ''}".strip()

    @api.model
    def _for_codes(self, codes, company):
        """``{code: policy}`` (the company's own first, then the shared one; an unknown
        code gets the shared ``OTHER`` policy)."""
        policies = self.search(
            [("code", "in", [*codes, "OTHER"]), ("company_id", "in", [company.id, False])],
            order="company_id",
        )
        by_code = {}
        for policy in policies.sorted(lambda p: not p.company_id):
            by_code.setdefault(policy.code, policy)
        fallback = by_code.get("OTHER")
        return {code: by_code.get(code, fallback) for code in codes}

    @api.model
    def _meaning(self, code):
        return bankfiles.REASON_CODES.get(code, ("", ""))[0]


class FlexSepaReturn(models.Model):
    _name = "flex.sepa.return"
    _description = "SEPA Direct Debit Return"
    _inherit = ["mail.thread"]
    _order = "date desc, id desc"
    _check_company_auto = True

    name = fields.Char(compute="_compute_name", store=True)
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    currency_id = fields.Many2one(related="batch_line_id.currency_id")
    return_type = fields.Selection(
        [("reject", "Reject"), ("return", "Return"), ("refund", "Refund")],
        string="Type",
        required=True,
        readonly=True,
        help="Reject: refused before settlement (pain.002). Return: sent back by the debtor's "
        "bank after settlement. Refund: the debtor asked for the money back (MD06).",
    )
    batch_line_id = fields.Many2one(
        "flex.sepa.batch.line", string="Debit", required=True, readonly=True, index=True
    )
    batch_id = fields.Many2one(related="batch_line_id.batch_id", store=True)
    invoice_id = fields.Many2one("account.move", required=True, readonly=True, index=True)
    subscription_id = fields.Many2one(related="invoice_id.flex_subscription_id", store=True)
    partner_id = fields.Many2one("res.partner", string="Debtor", readonly=True, index=True)
    mandate_id = fields.Many2one("flex.sepa.mandate", readonly=True, index=True)
    payment_id = fields.Many2one("account.payment", readonly=True)
    end_to_end_id = fields.Char(string="EndToEndId", readonly=True, index=True)
    reason_code = fields.Char(readonly=True)
    reason_id = fields.Many2one("flex.sepa.return.reason", string="Policy", readonly=True)
    reason = fields.Char(string="Meaning", readonly=True)
    bank_info = fields.Char(string="Bank's Information", readonly=True)
    date = fields.Date(required=True, readonly=True)
    amount = fields.Monetary(readonly=True)
    fee = fields.Monetary(string="Bank Fee", readonly=True)
    fee_invoice_id = fields.Many2one("account.move", readonly=True)
    statement_line_id = fields.Many2one(
        "account.bank.statement.line", string="Bank Statement Line", readonly=True
    )
    bank_entry_id = fields.Many2one("flex.sepa.bank.entry", readonly=True)
    technical = fields.Boolean(
        string="File Rejected",
        readonly=True,
        help="Rejected with the whole file or payment information block by the creditor's "
        "bank (e.g. FF01): no customer's fault. The debit is collected again by the next "
        "batch; no customer e-mail, no hold, not counted as a retry.",
    )
    action = fields.Selection(POLICY_ACTIONS, readonly=True)
    outcome = fields.Char(readonly=True, help="What the policy did.")
    retry_date = fields.Date(string="Retry Not Before", readonly=True)
    mail_state = fields.Selection(
        [("none", "Not sent"), ("pending", "To send"), ("sent", "Sent")],
        default="none",
        readonly=True,
        index=True,
    )

    @api.depends("invoice_id.name", "reason_code")
    def _compute_name(self):
        for ret in self:
            ret.name = f"{ret.invoice_id.name} {ret.reason_code or ''}".strip()

    # ------------------------------------------------------------------ policies

    @api.model
    def _create_from_bank(self, vals_list):
        """Record rejects/returns (``vals_list`` of prepared values with ``batch_line_id``,
        ``return_type``, ``reason_code``, ``date``, ``amount``, ``fee``...), undo their
        payments and apply each reason's policy. All in one go, whatever the number (a
        camt.054 may bring thousands): decisions first, then one write per kind of effect.
        The caller has already booked the bank side."""
        if not vals_list:
            return self.browse()
        env = self.env
        lines = env["flex.sepa.batch.line"].browse([v["batch_line_id"] for v in vals_list])
        company = lines.company_id[:1]
        policies = env["flex.sepa.return.reason"]._for_codes(
            {v["reason_code"] or "OTHER" for v in vals_list}, company
        )
        tries = dict(
            self._read_group(
                [("invoice_id", "in", lines.invoice_id.ids), ("technical", "=", False)],
                ["invoice_id"],
                ["__count"],
            )
        )
        for vals, line in zip(vals_list, lines, strict=True):
            policy = policies[vals["reason_code"] or "OTHER"]
            technical = bool(vals.get("technical"))
            if not technical:
                tries[line.invoice_id] = tries.get(line.invoice_id, 0) + 1
            decision = (
                self._decide_technical(vals["reason_code"])
                if technical
                else self._decide(policy, tries[line.invoice_id], vals["date"], line)
            )
            vals.update(
                {
                    "company_id": line.company_id.id,
                    "invoice_id": line.invoice_id.id,
                    "partner_id": line.partner_id.id,
                    "mandate_id": line.mandate_id.id,
                    "payment_id": line.payment_id.id,
                    "end_to_end_id": line.end_to_end_id,
                    "reason_id": policy.id,
                    "reason": vals.get("reason")
                    or (policy.code == vals["reason_code"] and policy.name)
                    or env["flex.sepa.return.reason"]._meaning(vals["reason_code"]),
                    "technical": technical,
                    "mail_state": "pending" if policy.notify_customer and not technical else "none",
                    # the stored related and computed fields, known here
                    "batch_id": line.batch_id.id,
                    "subscription_id": line.invoice_id.flex_subscription_id.id,
                    "name": f"{line.invoice_id.name} {vals['reason_code'] or ''}".strip(),
                    **decision,
                }
            )
        returns = self._insert(vals_list)
        for state, rets in returns.grouped(
            lambda r: "rejected" if r.return_type == "reject" else "returned"
        ).items():
            rets.batch_line_id.write({"state": state})
        # The payments' state, for thousands: what the ORM write would store, without its
        # tracking message per payment (the return records the change) or the recompute
        # of their invoices' totals, which a payment's state does not change.
        env.flush_all()
        env.cr.execute(
            "UPDATE account_payment SET state = 'rejected' WHERE id = ANY(%s)",
            [returns.payment_id.ids],
        )
        returns.payment_id.invalidate_recordset(["state"])
        returns._apply_policies()
        returns._reinvoice_fees()
        if returns.filtered(lambda r: r.mail_state == "pending"):
            env.ref("subscription_flex_sepa.ir_cron_flex_sepa_return_mail")._trigger()
        return returns

    RETURN_COLUMNS = (
        "name",
        "company_id",
        "return_type",
        "batch_line_id",
        "batch_id",
        "invoice_id",
        "subscription_id",
        "partner_id",
        "mandate_id",
        "payment_id",
        "end_to_end_id",
        "reason_code",
        "reason_id",
        "reason",
        "bank_info",
        "date",
        "amount",
        "fee",
        "statement_line_id",
        "bank_entry_id",
        "technical",
        "action",
        "outcome",
        "retry_date",
        "mail_state",
    )

    @api.model
    def _insert(self, vals_list):
        """The returns, in one INSERT: the ORM's create of a mail.thread record costs
        about 2 ms each, 20 s for a camt.054 of 10,000 returns. Every column is prepared
        by ``_create_from_bank`` (related and computed ones included); the invoice's
        chatter gets the note, the return record starts without messages."""
        self.env.flush_all()
        columns = self.RETURN_COLUMNS
        ids = self.env["flex.sepa.booking"]._next_ids("flex_sepa_return", len(vals_list))
        uid = int(self.env.uid)
        execute_values(
            self.env.cr._obj,
            f"""
            INSERT INTO flex_sepa_return (id, {", ".join(columns)},
                                          create_uid, write_uid, create_date, write_date)
            SELECT v.*, {uid}, {uid}, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
              FROM (VALUES %s) AS v
            """,
            [
                (
                    return_id,
                    *(
                        bool(vals.get(column))
                        if column == "technical"
                        else vals.get(column)
                        if vals.get(column) is not False
                        else None
                        for column in columns
                    ),
                )
                for return_id, vals in zip(ids, vals_list, strict=True)
            ],
            template="(%s, %s, %s::int, %s, %s::int, %s::int, %s::int, %s::int, %s::int, "
            "%s::int, %s::int, %s, %s, %s::int, %s, %s, %s::date, %s::numeric, %s::numeric, "
            "%s::int, %s::int, %s::bool, %s, %s, %s::date, %s)",
            page_size=5000,
        )
        self.invalidate_model()
        return self.browse(ids)

    def _decide(self, policy, tries, day, line):
        """The policy's decision for one return (``tries``: how many times this invoice
        came back, this one included): action, retry date, outcome."""
        env = self.env
        action = policy.action
        if action == "retry" and tries > policy.max_retries:
            return {
                "action": "manual",
                "outcome": env._("Returned %(tries)s times: no more automatic retry.", tries=tries),
            }
        if action == "retry":
            retry_date = day + timedelta(days=policy.retry_delay_days)
            return {
                "action": action,
                "retry_date": retry_date,
                "outcome": env._(
                    "Retry %(try)s of %(max)s, collected on %(date)s at the earliest.",
                    **{"try": tries, "max": policy.max_retries, "date": retry_date},
                ),
            }
        outcomes = {
            "suspend": env._(
                "Mandate %(ref)s suspended; a new mandate is needed.", ref=line.mandate_id.reference
            ),
            "close": env._(
                "Mandate %(ref)s closed; a new mandate is needed.", ref=line.mandate_id.reference
            ),
            "dispute": env._("Dispute: no automatic retry."),
            "manual": env._("Left to the accountant."),
        }
        return {"action": action, "outcome": outcomes[action]}

    def _decide_technical(self, code):
        """A debit rejected with its whole file or block by the creditor's bank (FF01 and
        the like): nobody's fault but the file's, collected again by the next batch."""
        return {
            "action": "retry",
            "outcome": self.env._(
                "Rejected with the whole file (%(code)s): collected again by the next batch.",
                code=code,
            ),
        }

    def _apply_policies(self):
        """What the decisions say, one write per kind of effect: invoices retried or held,
        mandates suspended or closed, a first debit rejected, activities, chatter."""
        env = self.env
        holds = {"suspend": "mandate", "close": "mandate", "dispute": "dispute", "manual": "manual"}
        today = fields.Date.context_today(self)
        rows = []
        for ret in self:
            hold = None if ret.action == "retry" else holds[ret.action]
            # The invoice's new risk, as _flex_sepa_update_risk will find it after the
            # import (which then has nothing to write for these invoices).
            risk = ret.invoice_id._flex_sepa_risk(
                today, ret.batch_line_id, not ret.technical, hold or "none"
            )
            rows.append(
                (
                    ret.invoice_id.id,
                    ret.retry_date or None,
                    hold,
                    risk or None,
                    today if risk else None,
                )
            )
        # Four technical columns of the invoices, nothing computed from them: one UPDATE
        # for thousands of invoices instead of Odoo's per-invoice write checks (each
        # UPDATE of thousands of moves costs a second: every index gets a new entry).
        env.flush_all()
        execute_values(
            env.cr._obj,
            """
            UPDATE account_move m
               SET flex_sepa_retry_date = COALESCE(v.retry, m.flex_sepa_retry_date),
                   flex_sepa_hold = v.hold,
                   flex_sepa_risk = v.risk,
                   flex_sepa_risk_date = CASE WHEN v.risk IS NOT DISTINCT FROM m.flex_sepa_risk
                                              THEN m.flex_sepa_risk_date ELSE v.day END
              FROM (VALUES %s) AS v(id, retry, hold, risk, day) WHERE m.id = v.id
            """,
            rows,
            template="(%s, %s::date, %s, %s, %s::date)",
            page_size=5000,
        )
        self.invoice_id.invalidate_recordset(
            ["flex_sepa_retry_date", "flex_sepa_hold", "flex_sepa_risk", "flex_sepa_risk_date"]
        )
        self.filtered(lambda r: r.action == "suspend").mandate_id.action_suspend()
        self.filtered(lambda r: r.action == "close").mandate_id.action_close()
        self._reset_rejected_first_debits()
        todo = env.ref("mail.mail_activity_data_todo")
        activities = self.filtered(lambda r: r.action != "retry" and r.reason_id.create_activity)
        env["mail.activity"].create(
            [
                {
                    "res_model_id": env["ir.model"]._get_id("account.move"),
                    "res_id": ret.invoice_id.id,
                    "activity_type_id": todo.id,
                    "summary": env._(
                        "Direct debit %(type)s: %(code)s",
                        type=ret._type_label(),
                        code=ret.reason_code,
                    ),
                    "note": f"{ret.reason} — {ret.outcome}",
                    "user_id": (ret.company_id.flex_sepa_return_user_id or env.user).id,
                    "date_deadline": fields.Date.context_today(self),
                }
                for ret in activities
            ]
        )
        messages = []
        for ret in self:
            body = env._(
                "Direct debit %(type)s on %(date)s: %(code)s %(reason)s. %(outcome)s",
                type=ret._type_label(),
                date=ret.date,
                code=ret.reason_code,
                reason=ret.reason,
                outcome=ret.outcome,
            )
            messages.append(("account.move", ret.invoice_id.id, body))
            if ret.action in ("suspend", "close"):
                messages.append(("flex.sepa.mandate", ret.mandate_id.id, body))
        env["flex.sepa.booking"]._post_notes(messages)

    def _reset_rejected_first_debits(self):
        """A rejected first debit never reached the debtor: the next one is a first one
        again (unless the mandate was used since)."""
        rejected = self.filtered(
            lambda r: r.return_type == "reject" and r.batch_line_id.sequence_type == "FRST"
        )
        if not rejected:
            return
        used = set(
            self.env["flex.sepa.batch.line"]
            .search(
                [
                    ("mandate_id", "in", rejected.mandate_id.ids),
                    ("state", "in", ("collected", "settled", "returned")),
                ]
            )
            .mandate_id.ids
        )
        rejected.mandate_id.filtered(lambda m: m.id not in used).write({"first_debit_done": False})

    def _type_label(self):
        return dict(self._fields["return_type"]._description_selection(self.env))[self.return_type]

    def _reinvoice_fees(self):
        """Per company choice, the bank fee becomes a customer invoice of the subscription
        (collected with the next batch like any of its invoices)."""
        to_invoice = self.filtered(
            lambda r: r.fee > 0 and r.company_id.flex_sepa_reinvoice_fee and not r.fee_invoice_id
        )
        if not to_invoice:
            return
        vals_list = []
        for ret in to_invoice:
            product = ret.company_id.flex_sepa_fee_product_id
            if not product:
                raise UserError(
                    self.env._(
                        "Choose the product that re-invoices returned-debit fees of %(company)s.",
                        company=ret.company_id.name,
                    )
                )
            vals_list.append(
                {
                    "move_type": "out_invoice",
                    "partner_id": ret.invoice_id.partner_id.id,
                    "company_id": ret.company_id.id,
                    "currency_id": ret.invoice_id.currency_id.id,
                    "journal_id": ret.invoice_id.journal_id.id,
                    "invoice_date": ret.date,
                    "flex_subscription_id": ret.invoice_id.flex_subscription_id.id,
                    "fiscal_position_id": ret.invoice_id.fiscal_position_id.id,
                    "invoice_origin": ret.invoice_id.name,
                    "invoice_line_ids": [
                        fields.Command.create(
                            {
                                "product_id": product.id,
                                "name": self.env._(
                                    "Returned direct debit %(invoice)s (%(code)s): bank fee",
                                    invoice=ret.invoice_id.name,
                                    code=ret.reason_code,
                                ),
                                "quantity": 1,
                                "price_unit": ret.fee,
                            }
                        )
                    ],
                }
            )
        invoices = self.env["account.move"].create(vals_list)
        invoices.action_post()
        for ret, invoice in zip(to_invoice, invoices, strict=True):
            ret.fee_invoice_id = invoice

    # ------------------------------------------------------------------ e-mails

    @api.model
    def _cron_send_mails(self, limit=200):
        """Tell customers about their returned debits (the import only marks them, so a
        file of 10,000 returns imports in one short transaction); at most ``limit`` per
        call, the cron runner calls again for the rest."""
        pending = self.search([("mail_state", "=", "pending")], limit=limit, order="id")
        remaining = self.search_count([("mail_state", "=", "pending")]) - len(pending)
        template = self.env.ref("subscription_flex_sepa.mail_template_sepa_return")
        # One rendering pass for the whole batch (send_mail would render record by record).
        template.send_mail_batch(
            pending.ids, force_send=False, email_layout_xmlid="mail.mail_notification_light"
        )
        pending.mail_state = "sent"
        self.env["ir.cron"]._notify_progress(done=len(pending), remaining=remaining)
        return pending

    def _reverse_rejected_payments(self):
        """A reject moved no money: each payment's entry is reversed (and reconciled with
        it), the invoice is open again; nothing goes to the bank journal."""
        rejects = self.filtered(lambda r: r.return_type == "reject" and r.payment_id.move_id)
        if not rejects:
            return
        moves = self.env["account.move"].concat(*(r.payment_id.move_id for r in rejects))
        moves.line_ids.filtered(lambda aml: aml.account_id.reconcile).remove_move_reconcile()
        moves._reverse_moves(
            [
                {
                    "date": ret.date,
                    "ref": self.env._(
                        "Rejected direct debit %(e2e)s (%(code)s)",
                        e2e=ret.end_to_end_id,
                        code=ret.reason_code,
                    ),
                }
                for ret in rejects
            ],
            cancel=True,
        )
