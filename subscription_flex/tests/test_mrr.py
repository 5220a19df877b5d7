from datetime import date

from odoo import Command
from odoo.tests import tagged

from .common import FlexCommon
from .test_usage import UsageCommon


@tagged("post_install", "-at_install")
class TestMrrReporting(FlexCommon):
    def _on(self, day, records):
        return records.with_context(flex_today=day)

    def _set_seats(self, sub, day, quantity):
        change = self._on(day, self.env["flex.subscription.change"]).create(
            {
                "subscription_id": sub.id,
                "line_ids": [
                    Command.create({"subscription_line_id": sub.line_ids.id, "quantity": quantity})
                ],
            }
        )
        change.action_confirm()
        return change

    def test_six_months_of_movements_reconcile(self):
        trial_plan = self._create_plan(name="With trial", trial_length=14)
        reason = self.env["flex.close.reason"].create({"name": "Too expensive"})
        seat = self.product_seat
        # January: A (5 seats × 10.00) on the 1st, B (2 × 10.00) on the 15th: new 70.00
        a = self._create_subscription(start=date(2027, 1, 1), lines=[(seat, 5, 10.0, 0.0)])
        b = self._create_subscription(start=date(2027, 1, 15), lines=[(seat, 2, 10.0, 0.0)])
        # February: A 5 -> 8 seats on the 10th: expansion 30.00. C starts a 14-day trial on
        # the 20th: no MRR during the trial.
        self._set_seats(a, date(2027, 2, 10), 8)
        c = self._create_subscription(
            plan=trial_plan, start=date(2027, 2, 20), lines=[(seat, 3, 10.0, 0.0)]
        )
        self.assertEqual(c.mrr, 0.0)
        # March: C's trial ends on the 6th: new 30.00. B 2 -> 1 seat on the 15th:
        # contraction 10.00.
        self._invoice(c, date(2027, 3, 6))
        self.assertEqual(c.state, "active")
        self._set_seats(b, date(2027, 3, 15), 1)
        # April: A paused on the 5th: churn 80.00.
        self._on(date(2027, 4, 5), a).action_pause()
        # May: A resumed on the 10th: reactivation 80.00. B cancelled on the 20th with a
        # refund: churn 10.00, reason "Too expensive".
        self._on(date(2027, 5, 10), a).action_resume()
        cancel = self._on(date(2027, 5, 20), self.env["flex.subscription.change"]).create(
            {"subscription_id": b.id, "change_type": "cancel_now", "close_reason_id": reason.id}
        )
        cancel.action_confirm()
        # June: C asks to cancel on the 1st; its period ends on the 6th: churn 30.00 then.
        # D (4 × 25.00) starts on the 15th: new 100.00.
        self._on(date(2027, 6, 1), c).action_request_close()
        self.assertEqual(c.end_date, date(2027, 6, 6))
        self.assertEqual(c.mrr, 30.0)  # still paying until it ends
        self._invoice(c, date(2027, 6, 6))
        self.assertEqual(c.state, "closed")
        self._create_subscription(start=date(2027, 6, 15), lines=[(seat, 4, 25.0, 0.0)])

        rows = self.env["flex.mrr.month"].search(
            [("company_id", "=", self.company.id)], order="month"
        )
        got = [
            (
                row.month,
                row.mrr_start,
                row.new_mrr,
                row.expansion,
                row.contraction,
                row.churn,
                row.reactivation,
                row.mrr_end,
                row.subscriptions_end,
            )
            for row in rows
            if row.month <= date(2027, 6, 1)
        ]
        expected = [
            # month           start   new    exp   contr  churn  react  end   paying
            (date(2027, 1, 1), 0.0, 70.0, 0.0, 0.0, 0.0, 0.0, 70.0, 2),
            (date(2027, 2, 1), 70.0, 0.0, 30.0, 0.0, 0.0, 0.0, 100.0, 2),
            (date(2027, 3, 1), 100.0, 30.0, 0.0, 10.0, 0.0, 0.0, 120.0, 3),
            (date(2027, 4, 1), 120.0, 0.0, 0.0, 0.0, 80.0, 0.0, 40.0, 2),
            (date(2027, 5, 1), 40.0, 0.0, 0.0, 0.0, 10.0, 80.0, 110.0, 2),
            (date(2027, 6, 1), 110.0, 100.0, 0.0, 0.0, 30.0, 0.0, 180.0, 2),
        ]
        self.assertEqual(got, expected)
        for row in rows:
            self.assertAlmostEqual(
                row.mrr_end,
                row.mrr_start
                + row.new_mrr
                + row.expansion
                - row.contraction
                - row.churn
                + row.reactivation,
                places=2,
            )
        by_month = {row.month: row for row in rows}
        self.assertEqual(by_month[date(2027, 4, 1)].churn_rate, 66.67)  # 80 / 120
        self.assertEqual(by_month[date(2027, 5, 1)].churn_rate, 25.0)  # 10 / 40
        self.assertEqual(by_month[date(2027, 6, 1)].arr_end, 2160.0)  # 180 × 12
        # Why they left.
        churned = self.env["flex.mrr.movement"].search(
            [("kind", "=", "churn"), ("company_id", "=", self.company.id)], order="date"
        )
        self.assertEqual(churned.subscription_id.ids, [a.id, b.id, c.id])
        self.assertEqual(churned[1].close_reason_id, reason)
        self.assertEqual(churned[1].change_id, cancel)
        # The subscriptions' own MRR matches the last month.
        running = self.Subscription.search(
            [("company_id", "=", self.company.id), ("state", "in", ("active", "to_close"))]
        )
        self.assertEqual(sum(running.mapped("mrr")), 180.0)
        self.assertEqual(sum(running.mapped("arr")), 2160.0)


@tagged("post_install", "-at_install")
class TestUsageRevenue(UsageCommon):
    def test_usage_is_reported_apart_from_mrr(self):
        plan = self._create_plan(name="Seat and storage")
        sub = self._seat_and_storage_subscription(plan)
        self._invoice(sub, date(2026, 1, 1))
        self._ingest(
            sub, [{"product": "GB", "quantity": 5, "time": "2026-01-05T10:00:00Z", "key": "g"}]
        )
        february = self._invoice(sub, date(2026, 2, 1))
        # 10.00 seat + 5 GB × 2.00 = 10.00 of usage; the MRR is the seat only.
        self.assertEqual(february.amount_untaxed, 20.0)
        self.assertEqual(sub.mrr, 10.0)
        # Usage of the last three months, per month: 10.00 / 3 = 3.33
        self.assertEqual(sub.with_context(flex_today=date(2026, 2, 15)).usage_revenue, 3.33)
        month = self.env["flex.mrr.month"].search(
            [("company_id", "=", self.company.id), ("month", "=", date(2026, 2, 1))]
        )
        self.assertEqual((month.usage_revenue, month.mrr_end), (10.0, 10.0))


@tagged("post_install", "-at_install")
class TestMrrPriceVersions(FlexCommon):
    def test_new_price_version_is_an_expansion_from_its_period(self):
        plan = self._create_plan(name="Versioned")
        for day, price in ((date(2020, 1, 1), 10.0), (date(2027, 2, 1), 12.0)):
            self.env["flex.price"].create(
                {
                    "plan_id": plan.id,
                    "product_id": self.product_seat.id,
                    "date_start": day,
                    "price_unit": price,
                }
            )
        sub = self._create_subscription(
            plan=plan, start=date(2027, 1, 1), lines=[(self.product_seat, 5, None, 0.0)]
        )
        self._invoice(sub, date(2027, 1, 1))
        self._invoice(sub, date(2027, 2, 1))
        # 5 × 10.00 = 50.00 new on 1 January; 5 × 12.00 = 60.00 from 1 February: +10.00
        moves = sub.mrr_movement_ids.sorted("date")
        self.assertEqual(
            [(m.date, m.kind, m.amount) for m in moves],
            [(date(2027, 1, 1), "new", 50.0), (date(2027, 2, 1), "expansion", 10.0)],
        )
        self._invoice(sub, date(2027, 3, 1))
        self.assertEqual(len(sub.mrr_movement_ids), 2)  # same price: nothing recorded

    def test_daily_sync_records_mrr_moved_outside_the_flows(self):
        sub = self._create_subscription(
            start=date(2027, 1, 1), lines=[(self.product_seat, 5, 10.0, 0.0)]
        )
        self.assertEqual(sub.mrr_movement_ids.mapped("amount"), [50.0])
        # A script writes the line directly, bypassing changes: 5 -> 7 seats.
        sub.line_ids.quantity = 7
        synced = self.Subscription.with_context(flex_today=date(2027, 4, 2))._cron_sync_mrr()
        # 7 × 10.00 = 70.00: +20.00, dated the day the sync saw it
        self.assertEqual(
            [(m.date, m.kind, m.amount) for m in synced & sub.mrr_movement_ids],
            [(date(2027, 4, 2), "expansion", 20.0)],
        )
        self.assertFalse(
            self.Subscription.with_context(flex_today=date(2027, 4, 3))._cron_sync_mrr()
            & sub.mrr_movement_ids
        )
