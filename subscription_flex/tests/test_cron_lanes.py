from odoo.exceptions import UserError
from odoo.tests import TransactionCase


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
