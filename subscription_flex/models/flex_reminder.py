"""Reminder rules: what is mailed to customers, when, once.

Every rule of a plan looks for *events* (a period end, a trial end, an unpaid invoice, a
usage threshold, an applied change...). An event has a key (its date, the invoice, the
change...): a rule mails one subscription at most once per key, which the unique index of
``flex.reminder.log`` guarantees whatever runs twice. Scheduled events are mailed from
``offset`` days before they happen until they happen: a missed day is caught up the next
day, and events already past are never mailed late (no burst after an outage).
"""

import logging
import zlib
from datetime import timedelta

from psycopg2.errors import SerializationFailure

from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL, formatLang, mute_logger

from ..core import periods as P

_logger = logging.getLogger(__name__)

TRIGGERS = [
    ("period_end", "Before the period ends (renewal)"),
    ("anniversary", "Before the yearly anniversary"),
    ("trial_end", "Before the trial ends"),
    ("term_end", "Before a fixed term ends"),
    ("invoice_unpaid", "Invoice unpaid after its due date"),
    ("usage_threshold", "Usage reaches a share of the included quantity"),
    ("change_applied", "Change applied (confirmation)"),
    ("cancellation", "Cancellation requested (confirmation)"),
]
# Model each trigger's template renders.
TRIGGER_MODELS = {
    "invoice_unpaid": "account.move",
    "change_applied": "flex.subscription.change",
}
EVENT_TRIGGERS = ("change_applied", "cancellation")
# First key of the transaction-level advisory lock a reminder run takes per subscription
# (the second is the subscription's id), so that parallel runs mail disjoint batches.
REMINDER_LOCK = zlib.crc32(b"subscription_flex.reminders") & 0x7FFFFFFF


class FlexReminderRule(models.Model):
    _name = "flex.reminder.rule"
    _description = "Subscription Reminder Rule"
    _order = "plan_id, sequence, id"

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    plan_id = fields.Many2one("flex.plan", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="plan_id.company_id", store=True)
    trigger = fields.Selection(TRIGGERS, required=True)
    offset_days = fields.Integer(
        string="Days",
        default=7,
        help="Before the event (period end, anniversary, trial or term end); after the due "
        "date for unpaid invoices. Confirmations are sent at once.",
    )
    threshold_percent = fields.Float(
        string="Threshold (%)", default=80.0, help="Usage: share of the included quantity."
    )
    template_id = fields.Many2one(
        "mail.template",
        required=True,
        domain="[('model', '=', template_model)]",
        ondelete="restrict",
    )
    template_model = fields.Char(compute="_compute_template_model")
    log_ids = fields.One2many("flex.reminder.log", "rule_id")

    _sql_constraints = [
        ("offset_not_negative", "CHECK(offset_days >= 0)", "The days cannot be negative."),
    ]

    @api.depends("trigger")
    def _compute_template_model(self):
        for rule in self:
            rule.template_model = TRIGGER_MODELS.get(rule.trigger, "flex.subscription")

    @api.constrains("trigger", "template_id")
    def _check_template_model(self):
        for rule in self:
            if rule.template_id.model != rule.template_model:
                raise ValidationError(
                    self.env._(
                        "Rule %(rule)s needs a template of %(model)s.",
                        rule=rule.name,
                        model=rule.template_model,
                    )
                )

    # ----------------------------------------------------------------- defaults

    @api.model
    def _default_rules_vals(self, plan):
        """Rules every new plan gets; renewal reminders only for periods of 3 months or
        more (a monthly reminder every month is noise), inactive otherwise."""
        env = self.env
        long_period = plan.months_per_period() >= 3
        specs = [
            ("period_end", env._("Renewal reminder"), 30 if long_period else 7, long_period),
            ("trial_end", env._("Trial ending"), 3, True),
            ("term_end", env._("Fixed term ending"), 30, True),
            ("invoice_unpaid", env._("Unpaid invoice"), 7, True),
            ("usage_threshold", env._("Usage threshold"), 0, True),
            ("change_applied", env._("Change confirmation"), 0, True),
            ("cancellation", env._("Cancellation confirmation"), 0, True),
        ]
        templates = {
            "period_end": "mail_template_flex_renewal",
            "trial_end": "mail_template_flex_trial_end",
            "term_end": "mail_template_flex_term_end",
            "invoice_unpaid": "mail_template_flex_unpaid",
            "usage_threshold": "mail_template_flex_usage_threshold",
            "change_applied": "mail_template_flex_change",
            "cancellation": "mail_template_flex_cancellation",
        }
        vals_list = []
        for sequence, (trigger, name, offset, active) in enumerate(specs):
            template = env.ref(f"subscription_flex.{templates[trigger]}", raise_if_not_found=False)
            if not template:
                continue  # data not loaded yet (module install): added by the post-init hook
            vals_list.append(
                {
                    "plan_id": plan.id,
                    "name": name,
                    "trigger": trigger,
                    "offset_days": offset,
                    "active": active,
                    "sequence": sequence,
                    "template_id": template.id,
                }
            )
        return vals_list

    # -------------------------------------------------------------------- events

    def _due_events(self, today):
        """``[(rule, subscription, key, record)]`` due ``today`` for scheduled triggers."""
        events = []
        for rule in self:
            method = getattr(rule, f"_events_{rule.trigger}", None)
            if method:
                events.extend((rule, sub, key, record) for sub, key, record in method(today))
        return events

    def _running_subscriptions(self, states=("active",)):
        return self.env["flex.subscription"].search(
            [("plan_id", "=", self.plan_id.id), ("state", "in", states)]
        )

    def _in_window(self, event_day, today):
        return event_day and event_day - timedelta(days=self.offset_days) <= today < event_day

    def _events_period_end(self, today):
        for sub in self._running_subscriptions():
            renewal = sub._current_period_end(today)
            if sub.end_date and sub.end_date <= renewal:
                continue  # it ends instead: the cancellation was confirmed already
            if self._in_window(renewal, today):
                yield sub, renewal.isoformat(), sub

    def _events_anniversary(self, today):
        for sub in self._running_subscriptions():
            if not sub.start_date or sub.end_date:
                continue
            years = max(1, today.year - sub.start_date.year)
            anniversary = P.add_interval(sub.start_date, years, "year")
            if anniversary <= today:
                anniversary = P.add_interval(sub.start_date, years + 1, "year")
            if self._in_window(anniversary, today):
                yield sub, anniversary.isoformat(), sub

    def _events_trial_end(self, today):
        for sub in self._running_subscriptions(("trial",)):
            if self._in_window(sub.trial_end_date, today):
                yield sub, sub.trial_end_date.isoformat(), sub

    def _events_term_end(self, today):
        for sub in self._running_subscriptions(("active", "to_close")):
            if sub.term_end_date and self._in_window(sub.term_end_date, today):
                yield sub, sub.term_end_date.isoformat(), sub

    def _events_invoice_unpaid(self, today):
        moves = self.env["account.move"].search(
            [
                ("flex_subscription_id.plan_id", "=", self.plan_id.id),
                ("move_type", "=", "out_invoice"),
                ("state", "=", "posted"),
                ("payment_state", "in", ("not_paid", "partial")),
                ("invoice_date_due", "<=", today - timedelta(days=self.offset_days)),
            ]
        )
        for move in moves:
            yield move.flex_subscription_id, f"invoice-{move.id}", move

    def _events_usage_threshold(self, today):
        share = self.threshold_percent / 100.0
        for sub in self._running_subscriptions(("active", "to_close")):
            if not sub.has_metered_lines:
                continue
            for usage in sub._get_usage_summary():
                included = float(usage["included"])
                if included and float(usage["quantity"]) >= included * share:
                    key = f"{usage['period_start'].isoformat()}-{usage['product'].id}"
                    yield sub.with_context(flex_usage=usage), key, sub


class FlexReminderLog(models.Model):
    _name = "flex.reminder.log"
    _description = "Subscription Reminder Sent"
    _order = "id desc"
    _rec_name = "rule_id"

    rule_id = fields.Many2one("flex.reminder.rule", required=True, ondelete="cascade", index=True)
    trigger = fields.Selection(related="rule_id.trigger", store=True)
    subscription_id = fields.Many2one(
        "flex.subscription", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="subscription_id.company_id", store=True)
    partner_id = fields.Many2one("res.partner", string="Sent To")
    key = fields.Char(required=True, help="The event: its date, invoice, change...")
    res_model = fields.Char(string="Document Model")
    res_id = fields.Many2oneReference(model_field="res_model", string="Document")
    mail_id = fields.Many2one("mail.mail", ondelete="set null")
    sent_on = fields.Datetime(default=fields.Datetime.now, required=True)

    _sql_constraints = [
        (
            "once_per_event",
            "UNIQUE(rule_id, subscription_id, key)",
            "This reminder was already sent for this event.",
        ),
    ]

    @api.model
    def _claim(self, events):
        """Log ``events`` (``[(rule, sub, key, record)]``) and return the ones this
        transaction claimed: an event logged already (an earlier run, another worker) is
        dropped, atomically (``ON CONFLICT DO NOTHING``)."""
        if not events:
            return []
        self.env.flush_all()
        values = [
            SQL(
                "(%s, %s, %s, %s, %s, %s, %s, %s, now() AT TIME ZONE 'UTC', %s, %s, now() "
                "AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
                rule.id,
                rule.trigger,
                sub.id,
                sub.company_id.id,
                record.partner_id.id,
                key,
                record._name,
                record.id,
                self.env.uid,
                self.env.uid,
            )
            for rule, sub, key, record in events
        ]
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO flex_reminder_log (rule_id, trigger, subscription_id, company_id,
                       partner_id, key, res_model, res_id, sent_on, create_uid, write_uid,
                       create_date, write_date)
                VALUES %s
                ON CONFLICT (rule_id, subscription_id, key) DO NOTHING
                RETURNING id, rule_id, subscription_id, key
                """,
                SQL(", ").join(values),
            )
        )
        claimed = {(row[1], row[2], row[3]): row[0] for row in self.env.cr.fetchall()}
        self.env["flex.subscription"].invalidate_model(["reminder_log_ids"])
        return [
            (self.sudo().browse(claimed[(rule.id, sub.id, key)]), rule, sub, key, record)
            for rule, sub, key, record in events
            if (rule.id, sub.id, key) in claimed
        ]


class FlexSubscription(models.Model):
    _inherit = "flex.subscription"  # pylint: disable=consider-merging-classes-inherited

    reminder_log_ids = fields.One2many("flex.reminder.log", "subscription_id", string="Reminders")

    # Values the mail templates show.
    def _reminder_renewal_date(self):
        self.ensure_one()
        return self._current_period_end(self._today())

    def _reminder_term_last_day(self):
        self.ensure_one()
        return self.term_end_date and self.term_end_date - timedelta(days=1)

    def _reminder_last_day(self):
        self.ensure_one()
        end = self.end_date or self.close_date
        return end and end - timedelta(days=1)

    def _reminder_usage_percent(self, usage):
        if not usage or not usage["included"]:
            return 0
        return int(usage["quantity"] * 100 / usage["included"])

    def _reminder_usage_quantity(self, usage):
        return formatLang(self.env, float(usage["quantity"]), digits=0) if usage else ""

    def _reminder_usage_included(self, usage):
        return formatLang(self.env, float(usage["included"]), digits=0) if usage else ""

    @api.model
    def _cron_send_reminders(self, batch_size=200):
        """Queue the reminders due today (Odoo's mail queue sends them in batches). At most
        ``batch_size`` per call; the cron runner calls again while some remain."""
        today = self._today()
        rules = self.env["flex.reminder.rule"].search(
            [("active", "=", True), ("trigger", "not in", EVENT_TRIGGERS)]
        )
        events = rules._due_events(today)
        Log = self.env["flex.reminder.log"]
        logged = {
            (log.rule_id.id, log.subscription_id.id, log.key)
            for log in Log.search(
                [("rule_id", "in", rules.ids), ("key", "in", list({e[2] for e in events}))]
            )
        }
        todo = [e for e in events if (e[0].id, e[1].id, e[2]) not in logged]
        batch = self._reminder_batch(todo, batch_size)
        sent = self._send_reminders(self._claim_reminders(batch))
        # Left: those other workers hold included.
        remaining = len(todo) - len(batch)
        if batch:
            _logger.info("Reminders: %s queued, %s due", len(sent), remaining)
        self.env["ir.cron"]._notify_progress(done=len(batch), remaining=remaining if batch else 0)
        if batch and remaining:
            self.env["ir.cron"]._flex_wake_lanes()
        return sent

    @api.model
    def _reminder_batch(self, todo, batch_size):
        """The events of ``todo`` this run takes: those of the subscriptions no other run
        holds, about ``batch_size`` (whole subscriptions), each subscription locked until
        this transaction ends (``pg_try_advisory_xact_lock``: SKIP LOCKED for events
        that are not rows). Each lane of the job starts at its own place in the list, so
        that parallel lanes do not take what another has just mailed (and this snapshot
        cannot see yet)."""
        per_sub = {}
        for event in todo:
            per_sub[event[1].id] = per_sub.get(event[1].id, 0) + 1
        sub_ids = list(per_sub)
        lane, lanes = self._reminder_lane()
        start = len(sub_ids) * lane // lanes
        sub_ids = sub_ids[start:] + sub_ids[:start]
        taken, size, position = set(), 0, 0
        while size < batch_size and position < len(sub_ids):
            # No ORDER BY: the locks are taken in the array's order, and only until LIMIT.
            self.env.cr.execute(
                """
                SELECT t.id, t.n FROM unnest(%s::int[]) WITH ORDINALITY AS t(id, n)
                 WHERE pg_try_advisory_xact_lock(%s, t.id)
                 LIMIT %s
                """,
                (sub_ids[position:], REMINDER_LOCK, batch_size - size),
            )
            rows = self.env.cr.fetchall()
            if not rows:
                break
            for sub_id, _n in rows:
                taken.add(sub_id)
                size += per_sub[sub_id]
            position += rows[-1][1]
        return [event for event in todo if event[1].id in taken]

    @api.model
    def _reminder_lane(self):
        """``(index, count)`` of the running lane among its job's lanes (``(0, 1)``
        outside a cron job)."""
        cron = self.env["ir.cron"].sudo().browse(self.env.context.get("cron_id")).exists()
        if not cron:
            return 0, 1
        main = cron.flex_lane_of_id or cron
        lanes = (main | main.flex_lane_ids).sorted("id")
        return lanes.ids.index(cron.id), len(lanes)

    @api.model
    def _claim_reminders(self, batch):
        """``flex.reminder.log._claim`` of ``batch``. A subscription another run mailed
        after this transaction began is logged already, in a row this (repeatable read)
        snapshot cannot see: PostgreSQL refuses to skip it (a serialization failure).
        Then each subscription is claimed on its own and the refused ones are dropped:
        they were mailed."""
        Log = self.env["flex.reminder.log"]
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                return Log._claim(batch)
        except SerializationFailure:
            _logger.debug("Reminders mailed by another run meanwhile: claimed one by one")
        per_sub = {}
        for event in batch:
            per_sub.setdefault(event[1].id, []).append(event)
        claimed = []
        for events in per_sub.values():
            try:
                with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                    claimed += Log._claim(events)
            except SerializationFailure:
                _logger.debug("Reminders of subscription %s sent by another run", events[0][1].id)
        return claimed

    def _send_event_reminder(self, trigger, record, key):
        """Confirmations (change applied, cancellation): queued at once, once per key."""
        self.ensure_one()
        rules = self.env["flex.reminder.rule"].search(
            [("plan_id", "=", self.plan_id.id), ("trigger", "=", trigger), ("active", "=", True)]
        )
        events = [(rule, self, key, record) for rule in rules]
        return self._send_reminders(self.env["flex.reminder.log"]._claim(events))

    @api.model
    def _send_reminders(self, claimed):
        logs = self.env["flex.reminder.log"]
        for log, rule, sub, _key, record in claimed:
            template = rule.template_id.sudo()
            mail_id = template.with_context(flex_usage=sub.env.context.get("flex_usage")).send_mail(
                record.id, force_send=False, email_layout_xmlid="mail.mail_notification_light"
            )
            log.write({"mail_id": mail_id})
            logs |= log
            _logger.debug("Reminder %s queued for %s", rule.name, sub.name)
        return logs
