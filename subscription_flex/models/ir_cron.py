"""Parallel lanes of a scheduled action, so that several Odoo cron workers share its work.

Odoo runs one scheduled action in one cron worker at a time (the worker holds a row lock
on the ``ir_cron`` row while the job runs): with several Odoo processes on one database,
a single invoicing job still runs in one of them. A *lane* is a copy of the job (same
code, same user, same interval) that any other worker can take at the same moment. The
work itself is shared safely by the job's code (subscriptions taken ``FOR UPDATE SKIP
LOCKED``, each invoiced once per period), so lanes only add hands, never double work.
A job with work left wakes its lanes (``_flex_wake_lanes``), so they start at once
instead of at their next scheduled call.
"""

import threading
import time
import weakref

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config

# First batch of a job run, per cursor (Odoo's cron runner keeps one cursor for the run's
# batches): where the cron thread has no start time (prefork cron workers).
_RUN_STARTED = weakref.WeakKeyDictionary()


class IrCron(models.Model):
    _inherit = "ir.cron"

    flex_lane_of_id = fields.Many2one(
        "ir.cron",
        string="Parallel Lane Of",
        ondelete="cascade",
        readonly=True,
        index="btree_not_null",
        copy=False,
        help="This job runs the code of that one beside it, so that several cron workers "
        "share its work.",
    )
    flex_lane_ids = fields.One2many(
        "ir.cron", "flex_lane_of_id", string="Parallel Lanes", context={"active_test": False}
    )
    flex_lane_count = fields.Integer(
        string="Parallel Workers",
        compute="_compute_flex_lane_count",
        inverse="_inverse_flex_lane_count",
        help="How many cron workers may run this job at the same time (1: Odoo's usual "
        "one at a time). Useful with several Odoo servers, or --max-cron-threads above 1, "
        "on one database; only for jobs whose code shares its work safely.",
    )
    flex_lanes_allowed = fields.Boolean(compute="_compute_flex_lane_count")

    @api.depends("flex_lane_ids")
    def _compute_flex_lane_count(self):
        allowed = self._flex_lane_jobs()
        for cron in self:
            cron.flex_lane_count = 1 + len(cron.flex_lane_ids)
            cron.flex_lanes_allowed = cron in allowed

    def _inverse_flex_lane_count(self):
        for cron in self:
            cron._flex_set_lanes(cron.flex_lane_count)

    @api.model
    def _flex_lane_jobs(self):
        """The jobs whose code shares its work between workers (row locks, SKIP LOCKED)."""
        jobs = self.browse()
        for xmlid in (
            "subscription_flex.ir_cron_flex_create_invoices",
            "subscription_flex.ir_cron_flex_apply_changes",
            "subscription_flex.ir_cron_flex_send_reminders",
        ):
            jobs |= self.env.ref(xmlid, raise_if_not_found=False) or self.browse()
        return jobs

    def _flex_set_lanes(self, count):
        """Run this job in ``count`` workers at most: create or remove its lanes."""
        self.ensure_one()
        if self.flex_lane_of_id:
            raise UserError(
                self.env._("Set the number of workers on %(job)s.", job=self.flex_lane_of_id.name)
            )
        if count < 1 or count > 32:
            raise UserError(self.env._("Between 1 and 32 workers, please."))
        if count > 1 and self not in self._flex_lane_jobs():
            raise UserError(
                self.env._(
                    "%(job)s does not share its work between workers: it can only run in "
                    "one at a time.",
                    job=self.name,
                )
            )
        lanes = self.flex_lane_ids
        if len(lanes) > count - 1:
            lanes[count - 1 :].unlink()
        for number in range(len(lanes) + 2, count + 1):
            self.copy(
                {
                    "name": self.env._("%(job)s (worker %(number)s)", job=self.name, number=number),
                    "flex_lane_of_id": self.id,
                    "nextcall": self.nextcall,
                }
            )
        return True

    def write(self, vals):
        res = super().write(vals)
        # A lane follows its job: on or off, every, who.
        shared = {
            key: vals[key]
            for key in ("active", "interval_number", "interval_type", "user_id")
            if key in vals
        }
        if shared and not self.env.context.get("flex_lane_sync"):
            lanes = self.flex_lane_ids - self
            if lanes:
                lanes.with_context(flex_lane_sync=True).write(shared)
        return res

    @api.model
    def _flex_wake_lanes(self):
        """Called by a job that has work left: the other lanes of the running job start
        now (a trigger each, unless one is pending), and the cron workers are woken when
        this batch commits. Odoo leaves a job with work left "ready", but a worker only
        looks again at its next poll (up to a minute later) unless it is notified: without
        this, a single worker would wait about a minute after every ten batches."""
        cron_id = self.env.context.get("cron_id")
        if not cron_id:
            return self.browse()
        # sudo: the cron's user runs the job's code; lanes are technical records.
        cron = self.sudo().browse(cron_id).exists()
        if cron:
            self.env.cr.postcommit.add(cron._notifydb)
        main = cron.flex_lane_of_id or cron
        others = (main | main.flex_lane_ids).filtered("active") - cron
        if not others:
            return others
        now = fields.Datetime.now()
        pending = set(
            self.env["ir.cron.trigger"]
            .sudo()
            .search([("cron_id", "in", others.ids), ("call_at", "<=", now)])
            .cron_id.ids
        )
        woken = others.filtered(lambda lane: lane.id not in pending)
        for lane in woken:
            lane._trigger()
        return woken

    @api.model
    def _flex_out_of_time(self, batch_seconds):
        """Whether one more batch (as long as the last, ``batch_seconds``) could overrun
        Odoo's real-time limit of the cron worker (``limit_time_real_cron``, else
        ``limit_time_real``: 120 s by default). Odoo calls a job with work left up to ten
        times in a row, and kills the worker at the limit: the batch in progress is lost
        and redone, and three timeouts in a row count as a failure of the job."""
        if not self.env.context.get("cron_id"):
            return False
        limit = config["limit_time_real_cron"]
        if not limit or limit < 0:
            limit = config["limit_time_real"]
        if not limit or limit <= 0:
            return False
        started = getattr(threading.current_thread(), "start_time", None)
        if not started:
            started = _RUN_STARTED.setdefault(self.env.cr, time.time() - batch_seconds)
        return time.time() - started + 2 * batch_seconds > limit

    @api.model
    def _flex_yield_run(self):
        """End this run of the running job (Odoo's runner stops when it is told nothing
        is left) and have it called again at once, in a new run with a new time limit."""
        cron_id = self.env.context.get("cron_id")
        # sudo: the cron's user runs the job's code; cron records are technical.
        cron = self.sudo().browse(cron_id).exists() if cron_id else self.browse()
        if cron:
            cron._trigger()
        return cron
