from datetime import date
from unittest.mock import patch

from odoo import Command
from odoo.exceptions import UserError
from odoo.sql_db import db_connect
from odoo.tests import TransactionCase, freeze_time, tagged
from odoo.tools import config

from ..models.flex_reminder import REMINDER_LOCK
from .common import FlexCommon


class TestCronLanes(TransactionCase):
    """Parallel lanes of the subscription jobs (the two-server run is in tests/)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.job = cls.env.ref("subscription_flex.ir_cron_flex_create_invoices")

    def test_lanes_are_copies_of_the_job_that_follow_it(self):
        self.job.flex_lane_count = 3
        lanes = self.job.flex_lane_ids
        self.assertEqual(len(lanes), 2)
        self.assertEqual(self.job.flex_lane_count, 3)
        self.assertEqual(set(lanes.mapped("code")), {self.job.code})
        self.assertEqual(set(lanes.mapped("user_id")), {self.job.user_id})
        self.assertEqual(
            sorted(lanes.mapped("name")),
            [f"{self.job.name} (worker 2)", f"{self.job.name} (worker 3)"],
        )
        self.job.write({"active": False, "interval_number": 2})
        self.assertEqual(lanes.mapped("active"), [False, False])
        self.assertEqual(lanes.mapped("interval_number"), [2, 2])
        self.job.write({"active": True})
        self.job.flex_lane_count = 2
        self.assertEqual(len(self.job.flex_lane_ids), 1)
        self.assertFalse((lanes - self.job.flex_lane_ids).exists())
        self.job.flex_lane_count = 1
        self.assertFalse(self.job.flex_lane_ids)
        self.assertFalse(lanes.exists())

    def test_a_job_that_does_not_share_its_work_gets_no_lane(self):
        other = self.env.ref("subscription_flex.ir_cron_flex_update_lifecycle")
        with self.assertRaisesRegex(UserError, "does not share its work"):
            other.flex_lane_count = 2
        self.assertFalse(other.flex_lane_ids)
        with self.assertRaisesRegex(UserError, "Between 1 and 32"):
            self.job.flex_lane_count = 0
        self.job.flex_lane_count = 2
        with self.assertRaisesRegex(UserError, "Set the number of workers on"):
            self.job.flex_lane_ids.flex_lane_count = 3

    def test_a_job_with_work_left_wakes_its_other_lanes_once(self):
        self.job.flex_lane_count = 3
        lanes = self.job.flex_lane_ids
        Cron = self.env["ir.cron"].with_context(cron_id=lanes[0].id)
        Trigger = self.env["ir.cron.trigger"]
        before = Trigger.search_count([("cron_id", "in", (self.job | lanes).ids)])
        self.assertEqual(Cron._flex_wake_lanes(), self.job | lanes[1])
        # Already woken: no second trigger each.
        self.assertFalse(Cron._flex_wake_lanes())
        self.assertEqual(
            Trigger.search_count([("cron_id", "in", (self.job | lanes).ids)]), before + 2
        )
        # Outside a cron job: nothing to wake.
        self.assertFalse(self.env["ir.cron"]._flex_wake_lanes())


@tagged("post_install", "-at_install")
class TestCronProgress(FlexCommon):
    """Jobs in batches tell Odoo's cron runner what is left (``ir.cron._notify_progress``):
    it calls again at once while something is, and the other lanes are woken to help."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Change = cls.env["flex.subscription.change"]
        cls.plan_yearly = cls._create_plan(name="Yearly", billing_unit="year")
        cls.partner.email = "customer@example.com"
        cls.plan_yearly.reminder_rule_ids.filtered(
            lambda rule: rule.trigger == "invoice_unpaid"
        ).active = False

    def _progress(self, job):
        return self.env["ir.cron.progress"].create({"cron_id": job.id, "remaining": 0, "done": 0})

    def _triggers(self, job):
        return self.env["ir.cron.trigger"].search_count([("cron_id", "=", job.id)])

    def test_scheduled_changes_report_what_is_left(self):
        job = self.env.ref("subscription_flex.ir_cron_flex_apply_changes")
        job.flex_lane_count = 2
        day = date(2027, 3, 20)
        # Only this test's changes are due on its day (in any company).
        self.Change.sudo().search(
            [("state", "=", "scheduled"), ("effective_date", "<=", day)]
        ).effective_date = date(2099, 1, 1)
        changes = self.Change
        for _i in range(3):
            sub = self._create_subscription(start=date(2027, 3, 1))
            sub.with_context(flex_today=date(2027, 3, 1))._create_recurring_invoices(
                date(2027, 3, 1)
            )
            change = self.Change.with_context(flex_today=date(2027, 3, 17)).create(
                {
                    "subscription_id": sub.id,
                    "timing": "date",
                    "date": day,
                    "line_ids": [
                        Command.create({"subscription_line_id": sub.line_ids.id, "quantity": 5})
                    ],
                }
            )
            change.action_confirm()
            changes |= change
        self.assertEqual(set(changes.mapped("state")), {"scheduled"})
        lane = job.flex_lane_ids
        triggers = self._triggers(lane)
        progress = self._progress(job)
        Change = self.Change.with_context(
            flex_today=day, cron_id=job.id, ir_cron_progress_id=progress.id
        )
        self.assertEqual(Change._cron_apply_scheduled(limit=2), changes[:2])
        self.assertEqual((progress.done, progress.remaining), (2, 1))
        self.assertEqual(self._triggers(lane), triggers + 1)  # the other lane helps
        progress = self._progress(job)
        Change = Change.with_context(ir_cron_progress_id=progress.id)
        self.assertEqual(Change._cron_apply_scheduled(limit=2), changes[2])
        self.assertEqual((progress.done, progress.remaining), (1, 0))
        progress = self._progress(job)
        Change = Change.with_context(ir_cron_progress_id=progress.id)
        self.assertFalse(Change._cron_apply_scheduled(limit=2))
        self.assertEqual((progress.done, progress.remaining), (0, 0))
        self.assertEqual(self._triggers(lane), triggers + 1)
        self.assertEqual(set(changes.mapped("state")), {"applied"})
        self.assertEqual(changes.subscription_id.line_ids.mapped("quantity"), [5.0] * 3)
        # 12 days of 31 left: credit -30 x 12/31 = -11.61, charge 50 x 12/31 = 19.35: 7.74
        # untaxed, tax -2.44 + 4.06 = 1.62 (one rounding per line); one invoice each.
        self.assertEqual(len(changes.move_id), 3)
        for change in changes:
            self.assertEqual(change.move_id.amount_untaxed, 7.74)
            self.assertEqual(change.move_id.amount_total, 9.36)

    def test_parallel_reminder_runs_take_disjoint_batches(self):
        subs = self.Subscription
        for _i in range(3):
            sub = self._create_subscription(plan=self.plan_yearly, start=date(2027, 1, 1))
            sub.with_context(flex_today=date(2027, 1, 1))._create_recurring_invoices(
                date(2027, 1, 1)
            )
            subs |= sub
        job = self.env.ref("subscription_flex.ir_cron_flex_send_reminders")
        progress = self._progress(job)
        Subscription = self.Subscription.with_context(ir_cron_progress_id=progress.id)
        # Another run (another PostgreSQL session) holds the first subscription.
        with db_connect(self.env.cr.dbname).cursor() as other, freeze_time("2027-12-02 08:00"):
            other.execute("SELECT pg_advisory_xact_lock(%s, %s)", [REMINDER_LOCK, subs[0].id])
            logs = Subscription._cron_send_reminders(batch_size=3)
            self.assertEqual(logs.subscription_id, subs[1:])
            self.assertEqual((progress.done, progress.remaining), (2, 1))
        # Released: the next call takes it, once.
        progress = self._progress(job)
        Subscription = self.Subscription.with_context(ir_cron_progress_id=progress.id)
        with freeze_time("2027-12-02 08:05"):
            self.assertEqual(
                Subscription._cron_send_reminders(batch_size=3).subscription_id, subs[0]
            )
            self.assertEqual((progress.done, progress.remaining), (1, 0))
            self.assertFalse(Subscription._cron_send_reminders(batch_size=3))
        self.assertEqual(len(subs.reminder_log_ids), 3)
        self.assertEqual(len(subs.reminder_log_ids.mail_id), 3)

    def test_each_lane_starts_at_its_own_place(self):
        job = self.env.ref("subscription_flex.ir_cron_flex_send_reminders")
        job.flex_lane_count = 2
        subs = self.Subscription
        for _i in range(4):
            subs |= self._create_subscription(plan=self.plan_yearly, start=date(2027, 1, 1))
        rule = self.plan_yearly.reminder_rule_ids[:1]
        todo = [(rule, sub, "key", sub) for sub in subs]
        first = self.Subscription.with_context(cron_id=job.id)._reminder_batch(todo, 2)
        second = self.Subscription.with_context(cron_id=job.flex_lane_ids.id)._reminder_batch(
            todo, 2
        )
        self.assertEqual([event[1] for event in first], list(subs[:2]))
        self.assertEqual([event[1] for event in second], list(subs[2:]))


@tagged("post_install", "-at_install")
class TestCronTimeLimit(FlexCommon):
    """A job with work left ends its run before Odoo's real-time limit of the cron worker
    would kill it (the batch in progress lost, three timeouts a failure), and is called
    again at once in a new run."""

    def test_out_of_time_near_the_limit(self):
        Cron = self.env["ir.cron"].with_context(cron_id=1)
        with patch.dict(config.options, {"limit_time_real_cron": 100}):
            # The run started with a 10 s batch: 10 s spent, another 2 × 10 s fit.
            self.assertFalse(Cron._flex_out_of_time(10))
            # A batch of 50 s: 10 s spent + 2 × 50 s would pass 100 s.
            self.assertTrue(Cron._flex_out_of_time(50))
            # Outside a cron run, never.
            self.assertFalse(self.env["ir.cron"]._flex_out_of_time(50))
        with patch.dict(config.options, {"limit_time_real_cron": 0, "limit_time_real": 0}):
            self.assertFalse(Cron._flex_out_of_time(10_000))

    def test_invoicing_run_ends_and_starts_again(self):
        job = self.env.ref("subscription_flex.ir_cron_flex_create_invoices")
        day = date(2027, 3, 1)
        subs = self.Subscription
        for _i in range(3):
            subs |= self._create_subscription(start=day)
        # Only this test's subscriptions are due (in any company).
        self.env["flex.subscription"].sudo().search(
            [("id", "not in", subs.ids), ("next_invoice_date", "<=", day)]
        ).write({"invoicing_error_date": day})
        progress = self.env["ir.cron.progress"].create(
            {"cron_id": job.id, "remaining": 0, "done": 0}
        )
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", job.id)])
        Subscription = self.Subscription.with_context(
            flex_today=day, cron_id=job.id, ir_cron_progress_id=progress.id
        )
        with patch.dict(config.options, {"limit_time_real_cron": 1e-6}):
            invoiced = Subscription._cron_create_invoices(batch_size=2)
        self.assertEqual(len(invoiced), 2)
        # Work is left, but the run says it is done: Odoo's runner stops calling...
        self.assertEqual((progress.done, progress.remaining), (2, 0))
        # ...and the job is called again at once, in a new run.
        self.assertEqual(
            self.env["ir.cron.trigger"].search_count([("cron_id", "=", job.id)]), triggers + 1
        )
