import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from odoo import Command
from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from .common import FlexCommon


@tagged("post_install", "-at_install")
class UsageCommon(FlexCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        metered = {
            "type": "service",
            "flex_is_subscription": True,
            "flex_metered": True,
            "taxes_id": [Command.set(cls.tax_21.ids)],
            "lst_price": 0.0,
        }
        cls.api_calls = cls._create_product(
            name="API calls",
            default_code="API",
            flex_unit_label="calls",
            flex_aggregation="sum",
            **metered,
        )
        cls.storage = cls._create_product(
            name="Storage", default_code="GB", flex_aggregation="max", **metered
        )
        cls.users = cls._create_product(
            name="Active users", default_code="USERS", flex_aggregation="unique", **metered
        )
        cls.logins = cls._create_product(
            name="Logins", default_code="LOGINS", flex_aggregation="count", **metered
        )
        cls.seats_used = cls._create_product(
            name="Seats in use",
            default_code="INUSE",
            flex_aggregation="last",
            flex_allow_corrections=True,
            **metered,
        )
        cls.plan = cls._create_plan(name="Usage plan")
        price = {
            "plan_id": cls.plan.id,
            "currency_id": cls.currency.id,
            "date_start": date(2025, 1, 1),
        }
        cls.env["flex.price"].create(
            [
                {
                    **price,
                    "product_id": cls.api_calls.id,
                    "pricing_model": "graduated",
                    "price_unit": 0.0,
                    "included_quantity": 1000,
                    "tier_ids": [
                        Command.create({"up_to": 10000, "unit_price": 0.010}),
                        Command.create({"open_ended": True, "unit_price": 0.008}),
                    ],
                },
                {
                    **price,
                    "product_id": cls.storage.id,
                    "pricing_model": "per_unit",
                    "price_unit": 0.50,
                },
                {
                    **price,
                    "product_id": cls.users.id,
                    "pricing_model": "volume",
                    "price_unit": 0.0,
                    "tier_ids": [
                        Command.create({"up_to": 10, "unit_price": 5.0}),
                        Command.create({"up_to": 50, "unit_price": 4.0}),
                        Command.create({"open_ended": True, "unit_price": 3.0}),
                    ],
                },
                {
                    **price,
                    "product_id": cls.logins.id,
                    "pricing_model": "package",
                    "price_unit": 2.0,
                    "package_size": 100,
                },
                {
                    **price,
                    "product_id": cls.seats_used.id,
                    "pricing_model": "per_unit",
                    "price_unit": 3.0,
                    "minimum_charge": 10.0,
                },
            ]
        )

    @classmethod
    def _usage_subscription(cls, **vals):
        lines = [(cls.product_seat, 3, 10.0, 0.0)] + [
            (product, 1, None, 0.0)
            for product in (cls.api_calls, cls.storage, cls.users, cls.logins, cls.seats_used)
        ]
        return cls._create_subscription(plan=cls.plan, start=date(2026, 1, 1), lines=lines, **vals)

    def _ingest(self, sub, events, now=datetime(2026, 1, 31, 12, 0)):
        payload = [{"subscription": sub.id, **event} for event in events]
        return self.env["flex.usage"].with_context(flex_now=now)._ingest(payload)

    def _seat_and_storage_subscription(self, plan):
        """One seat at 10.00 and storage at 2.00 per GB (maximum of the period)."""
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.storage.id,
                "currency_id": self.currency.id,
                "date_start": date(2025, 1, 1),
                "price_unit": 2.0,
            }
        )
        return self._create_subscription(
            plan=plan, lines=[(self.product_seat, 1, 10.0, 0.0), (self.storage, 1, None, 0.0)]
        )

    def _line(self, move, product, late=False):
        lines = move.invoice_line_ids.filtered(
            lambda line: line.product_id == product and ("late usage" in line.name) == late
        )
        self.assertEqual(len(lines), 1, f"one line for {product.display_name} on {move.name}")
        return lines


@tagged("post_install", "-at_install")
class TestUsageRating(UsageCommon):
    def test_every_aggregation_and_pricing_model(self):
        sub = self._usage_subscription()
        events = [
            {"product": "API", "quantity": 5000, "time": "2026-01-03T10:00:00Z", "key": "a1"},
            {"product": "API", "quantity": 7500, "time": "2026-01-28T10:00:00Z", "key": "a2"},
            {"product": "GB", "quantity": 12.5, "time": "2026-01-02T00:00:00Z", "key": "g1"},
            {"product": "GB", "quantity": 30.2, "time": "2026-01-15T00:00:00Z", "key": "g2"},
            {"product": "GB", "quantity": 8, "time": "2026-01-30T00:00:00Z", "key": "g3"},
            {"product": "INUSE", "quantity": 4, "time": "2026-01-05T09:00:00Z", "key": "s1"},
            {"product": "INUSE", "quantity": 2, "time": "2026-01-20T09:00:00Z", "key": "s2"},
        ]
        events += [
            {
                "product": "USERS",
                "quantity": 1,
                "time": "2026-01-10T08:00:00Z",
                "key": f"u{i}",
                "unique_value": f"user-{i % 12}",
            }
            for i in range(30)
        ]
        events += [
            {"product": "LOGINS", "time": "2026-01-11T08:00:00Z", "key": f"l{i}"}
            for i in range(250)
        ]
        result = self._ingest(sub, events)
        self.assertEqual(
            (result["accepted"], result["duplicates"], result["rejected"]), (287, 0, 0)
        )
        # Metered lines have no fixed amount: the recurring total is the seats only.
        self.assertEqual(sub.recurring_total, 30.0)
        january = self._invoice(sub, date(2026, 1, 1))
        self.assertFalse(
            january.invoice_line_ids.filtered(lambda line: line.flex_line_kind == "usage")
        )
        february = self._invoice(sub, date(2026, 2, 1))
        # 12,500 calls - 1,000 included = 11,500: 10,000 x 0.010 + 1,500 x 0.008
        self.assertEqual(self._line(february, self.api_calls).price_subtotal, 112.00)
        self.assertEqual(self._line(february, self.storage).price_subtotal, 15.10)  # 30.2 x 0.50
        self.assertEqual(self._line(february, self.users).price_subtotal, 48.00)  # 12 x 4.00
        self.assertEqual(self._line(february, self.logins).price_subtotal, 6.00)  # 3 packs x 2.00
        self.assertEqual(self._line(february, self.seats_used).price_subtotal, 10.00)  # minimum
        self.assertEqual(self._line(february, self.product_seat).price_subtotal, 30.00)
        self.assertEqual(february.amount_untaxed, 221.10)
        self.assertEqual(february.amount_tax, 46.43)
        self.assertEqual(february.amount_total, 267.53)
        api_line = self._line(february, self.api_calls)
        self.assertEqual(
            (api_line.flex_period_start, api_line.flex_period_end),
            (date(2026, 1, 1), date(2026, 1, 31)),
        )
        self.assertIn("12,500 calls, 1,000 included", api_line.name)
        self.assertIn("10,000 × 0.01 = 100.00", api_line.name)
        self.assertIn("1,500 × 0.008 = 12.00", api_line.name)
        usage = self.env["flex.usage"].search([("subscription_id", "=", sub.id)])
        self.assertEqual(set(usage.mapped("state")), {"invoiced"})
        self.assertEqual(usage.filtered(lambda u: u.key == "a1").invoice_line_id, api_line)
        self.assertEqual(sub.usage_billed_until, date(2026, 2, 1))

    def test_late_event_is_rerated_on_the_next_invoice(self):
        sub = self._usage_subscription()
        self._ingest(
            sub,
            [{"product": "API", "quantity": 12500, "time": "2026-01-03T10:00:00Z", "key": "a1"}],
        )
        self._run_cron(date(2026, 2, 1))
        self._ingest(
            sub,
            [
                {"product": "API", "quantity": 500, "time": "2026-01-20T10:00:00Z", "key": "late"},
                {"product": "API", "quantity": 2000, "time": "2026-02-10T10:00:00Z", "key": "feb"},
            ],
            now=datetime(2026, 2, 11),
        )
        march = self._invoice(sub, date(2026, 3, 1))
        late = self._line(march, self.api_calls, late=True)
        # January re-rated with the late event: 13,000 - 1,000 = 12,000 -> 100.00 + 16.00,
        # minus the 112.00 already invoiced.
        self.assertEqual(late.price_subtotal, 4.00)
        self.assertEqual(
            (late.flex_period_start, late.flex_period_end), (date(2026, 1, 1), date(2026, 1, 31))
        )
        # February alone: 2,000 - 1,000 included = 1,000 x 0.010.
        self.assertEqual(self._line(march, self.api_calls).price_subtotal, 10.00)
        self.assertEqual(
            self.env["flex.usage"].search([("key", "=", "late")]).invoice_line_id, late
        )

    def test_minimum_charge_applies_without_usage(self):
        sub = self._usage_subscription()
        self._run_cron(date(2026, 2, 1))
        february = self._recurring_invoices(sub)[-1]
        self.assertEqual(self._line(february, self.seats_used).price_subtotal, 10.00)
        usage_lines = february.invoice_line_ids.filtered(
            lambda line: line.flex_line_kind == "usage"
        )
        self.assertEqual(usage_lines.product_id, self.seats_used)

    def test_in_arrears_plan_bills_usage_of_the_same_period(self):
        plan = self._create_plan(invoicing_timing="arrears")
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.storage.id,
                "currency_id": self.currency.id,
                "date_start": date(2025, 1, 1),
                "price_unit": 1.25,
            }
        )
        sub = self._create_subscription(plan=plan, lines=[(self.storage, 1, None, 0.0)])
        self._ingest(
            sub, [{"product": "GB", "quantity": 7, "time": "2026-01-09T00:00:00Z", "key": "x"}]
        )
        move = self._invoice(sub, date(2026, 2, 1))
        self.assertEqual(move.invoice_line_ids.price_subtotal, 8.75)  # 7 x 1.25
        self.assertEqual(move.flex_period_start, date(2026, 1, 1))

    def test_close_now_bills_the_last_usage(self):
        sub = self._usage_subscription()
        self._invoice(sub, date(2026, 1, 1))
        self._ingest(
            sub, [{"product": "GB", "quantity": 9, "time": "2026-01-10T00:00:00Z", "key": "g"}]
        )
        sub.with_context(flex_today=date(2026, 1, 20)).action_close_now(
            reason=self.env.ref("subscription_flex.close_reason_too_expensive")
        )
        self.assertEqual(sub.state, "closed")
        self.assertEqual(sub.close_date, date(2026, 1, 20))
        final = self.env["account.move"].search(
            [("flex_subscription_id", "=", sub.id), ("flex_billing_kind", "=", "usage_final")]
        )
        self.assertEqual(len(final), 1)
        self.assertEqual(final.invoice_date, date(2026, 1, 20))
        # Storage 9 GB x 0.50 + the seats-in-use minimum 10.00; no base charges.
        self.assertEqual(self._line(final, self.storage).price_subtotal, 4.50)
        self.assertEqual(self._line(final, self.seats_used).price_subtotal, 10.00)
        self.assertFalse(
            final.invoice_line_ids.filtered(lambda line: line.product_id == self.product_seat)
        )
        self.assertEqual(final.amount_total, 17.55)  # 14.50 + 21% (0.95 + 2.10)
        self.assertEqual(
            (final.flex_period_start, final.flex_period_end), (date(2026, 1, 1), date(2026, 1, 19))
        )
        # Nothing more afterwards.
        self.assertFalse(self._run_cron(date(2026, 3, 1)))

    def test_volume_tier_flat_fee_is_billed(self):
        plan = self._create_plan(invoicing_timing="arrears")
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.users.id,
                "currency_id": self.currency.id,
                "date_start": date(2025, 1, 1),
                "pricing_model": "volume",
                "price_unit": 0.0,
                "tier_ids": [
                    Command.create({"up_to": 10, "unit_price": 5.0}),
                    Command.create({"open_ended": True, "unit_price": 4.0, "flat_fee": 25.0}),
                ],
            }
        )
        sub = self._create_subscription(plan=plan, lines=[(self.users, 1, None, 0.0)])
        self._ingest(
            sub,
            [
                {
                    "product": "USERS",
                    "time": "2026-01-10T08:00:00Z",
                    "key": f"u{i}",
                    "unique_value": f"user-{i}",
                }
                for i in range(12)
            ],
        )
        move = self._invoice(sub, date(2026, 2, 1))
        self.assertEqual(move.invoice_line_ids.price_subtotal, 73.00)  # 12 x 4.00 + 25.00

    def test_deleting_a_draft_invoice_releases_its_usage(self):
        plan = self._create_plan(invoicing_mode="draft")
        sub = self._seat_and_storage_subscription(plan)
        self._invoice(sub, date(2026, 1, 1))
        self._ingest(
            sub, [{"product": "GB", "quantity": 6, "time": "2026-01-10T00:00:00Z", "key": "gb"}]
        )
        february = self._invoice(sub, date(2026, 2, 1))
        self.assertEqual(self._line(february, self.storage).price_subtotal, 12.00)
        usage = self.env["flex.usage"].search([("key", "=", "gb")])
        self.assertEqual(usage.state, "invoiced")
        february.unlink()
        self.assertEqual((usage.state, usage.invoice_line_id.id), ("pending", False))
        self.assertEqual(sub.usage_billed_until, date(2026, 1, 1))
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 1))
        again = self._invoice(sub, date(2026, 2, 1))
        line = self._line(again, self.storage)
        self.assertEqual(line.price_subtotal, 12.00)
        self.assertEqual(usage.invoice_line_id, line)

    def test_removing_a_usage_line_from_a_draft_releases_its_events(self):
        plan = self._create_plan(invoicing_mode="draft", invoicing_timing="arrears")
        sub = self._seat_and_storage_subscription(plan)
        self._ingest(
            sub, [{"product": "GB", "quantity": 6, "time": "2026-01-10T00:00:00Z", "key": "gb"}]
        )
        move = self._invoice(sub, date(2026, 2, 1))
        usage = self.env["flex.usage"].search([("key", "=", "gb")])
        self.assertEqual(usage.invoice_id, move)
        self.assertEqual(self.env["flex.usage"].search([("invoice_id", "=", move.id)]), usage)
        move.write({"invoice_line_ids": [Command.unlink(self._line(move, self.storage).id)]})
        self.assertEqual(usage.state, "pending")
        # Still pending for January: it is billed, as late usage, on the next invoice.
        march = self._invoice(sub, date(2026, 3, 1))
        self.assertEqual(self._line(march, self.storage, late=True).price_subtotal, 12.00)

    def test_billing_updates_touch_no_index(self):
        """Marking events invoiced must stay a HOT update: no index on what it writes."""
        self.env.cr.execute(
            """
            SELECT a.attname FROM pg_index i
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = 'flex_usage'::regclass
            """
        )
        indexed = {row[0] for row in self.env.cr.fetchall()}
        self.assertEqual(indexed, {"id", "subscription_id", "key", "event_time"})

    def test_live_summary(self):
        sub = self._usage_subscription()
        self._invoice(sub, date(2026, 1, 1))
        self._ingest(
            sub,
            [
                {"product": "API", "quantity": 600, "time": "2026-01-03T10:00:00Z", "key": "a1"},
                {"product": "API", "quantity": 900, "time": "2026-01-04T10:00:00Z", "key": "a2"},
            ],
        )
        summary = {row["product"]: row for row in sub._get_usage_summary(datetime(2026, 1, 20))}
        api = summary[self.api_calls]
        self.assertEqual(api["quantity"], 1500)
        self.assertEqual(api["included_left"], 0)
        self.assertEqual(str(api["amount"]), "5.00")  # 500 x 0.010
        self.assertEqual(summary[self.seats_used]["amount"], 10)  # minimum, no usage yet
        self.assertEqual(
            (api["period_start"], api["period_end"]), (date(2026, 1, 1), date(2026, 1, 31))
        )
        self.assertIn("Active users", sub.usage_summary_html)
        # The rows are HTML, not escaped text.
        self.assertIn("<td>[API] API calls</td>", sub.usage_summary_html)
        self.assertNotIn("&lt;tr", sub.usage_summary_html)


@tagged("post_install", "-at_install")
class TestUsageIngestion(UsageCommon):
    def test_duplicates_within_and_across_batches(self):
        sub = self._usage_subscription()
        event = {"product": "API", "quantity": 10, "time": "2026-01-05T00:00:00Z", "key": "k1"}
        first = self._ingest(sub, [event, dict(event), {**event, "key": "k2"}])
        self.assertEqual((first["accepted"], first["duplicates"]), (2, 1))
        self.assertEqual(
            [r["status"] for r in first["results"]], ["accepted", "duplicate", "accepted"]
        )
        again = self._ingest(sub, [event])
        self.assertEqual((again["accepted"], again["duplicates"]), (0, 1))
        self.assertEqual(self.env["flex.usage"].search_count([("subscription_id", "=", sub.id)]), 2)

    def test_bad_events_are_rejected_one_by_one(self):
        sub = self._usage_subscription()
        other = self._create_subscription(start=date(2026, 1, 1))
        closed = self._usage_subscription()
        closed.with_context(flex_today=date(2026, 1, 2)).action_close_now()
        good = {
            "subscription": sub.id,
            "product": "API",
            "quantity": 1,
            "time": "2026-01-05T00:00:00Z",
        }
        events = [
            {**good, "key": "ok"},
            {**good, "key": "nosub", "subscription": 999999},
            {**good, "key": "byname", "subscription": sub.name},
            {**good, "key": "noprod", "product": "NOPE"},
            {**good, "key": "notmetered", "product": self.product_seat.id},
            {**good, "key": "notonsub", "subscription": other.id},
            {**good, "key": "closed", "subscription": closed.id},
            {**good, "key": "future", "time": "2026-02-02T00:00:00Z"},
            {**good, "key": "before", "time": "2025-12-31T23:00:00Z"},
            {**good, "key": "nan", "quantity": "abc"},
            {**good, "key": "bool", "quantity": True},
            {**good, "key": "neg", "quantity": -3},
            {**good, "key": "corr", "product": "INUSE", "quantity": -1},
            {**good, "key": ""},
            {**good, "key": "x" * 300},
            {**good, "key": "badtime", "time": "yesterday"},
            "not an object",
        ]
        result = self.env["flex.usage"].with_context(flex_now=datetime(2026, 1, 31))._ingest(events)
        statuses = {
            r["key"] if isinstance(r["key"], str) and 0 < len(r["key"]) < 50 else r["index"]: (
                r["status"],
                r.get("reason"),
            )
            for r in result["results"]
        }
        self.assertEqual(statuses["ok"][0], "accepted")
        self.assertEqual(statuses["byname"][0], "accepted")
        self.assertEqual(statuses["corr"][0], "accepted")
        expected = {
            "nosub": "Unknown subscription",
            "noprod": "Unknown product",
            "notmetered": "not metered",
            "notonsub": "not on this subscription",
            "closed": "not running",
            "future": "future",
            "before": "before the subscription",
            "nan": "must be a number",
            "bool": "must be a number",
            "neg": "Negative",
            "badtime": "ISO 8601",
            14: "longer than",
            13: "Missing",
            16: "object",
        }
        for key, text in expected.items():
            status, reason = statuses[key]
            self.assertEqual(status, "rejected", key)
            self.assertIn(text, reason, key)
        self.assertEqual((result["accepted"], result["rejected"]), (3, 14))
        self.assertEqual(
            sorted(self.env["flex.usage"].search([("subscription_id", "=", sub.id)]).mapped("key")),
            ["byname", "corr", "ok"],
        )

    def test_orm_create_and_import_deduplicate(self):
        sub = self._usage_subscription()
        self._ingest(
            sub, [{"product": "API", "quantity": 5, "time": "2026-01-05T00:00:00Z", "key": "same"}]
        )
        Usage = self.env["flex.usage"].with_context(flex_now=datetime(2026, 1, 31))
        record = Usage.create(
            {
                "subscription_id": sub.id,
                "product_id": self.api_calls.id,
                "quantity": 5,
                "event_time": "2026-01-05 00:00:00",
                "key": "same",
            }
        )
        self.assertEqual(record.source, "batch")  # the one recorded first
        result = Usage.with_context(import_file=True).load(
            ["subscription_id", "product_id", "quantity", "event_time", "key"],
            [
                [sub.name, "API calls", "2", "2026-01-06 10:00:00", "imp-1"],
                [sub.name, "API calls", "2", "2026-01-06 10:00:00", "imp-1"],
                [sub.name, "API calls", "2", "2026-01-06 10:00:00", "same"],
            ],
        )
        self.assertFalse(result["messages"], result["messages"])
        keys = self.env["flex.usage"].search([("subscription_id", "=", sub.id)]).mapped("key")
        self.assertEqual(sorted(keys), ["imp-1", "same"])
        bad = Usage.with_context(import_file=True).load(
            ["subscription_id", "product_id", "quantity", "event_time", "key"],
            [[sub.name, "API calls", "-2", "2026-01-06 10:00:00", "imp-neg"]],
        )
        self.assertTrue(bad["messages"])
        self.assertIn("Negative", bad["messages"][0]["message"])
        self.assertFalse(self.env["flex.usage"].search([("key", "=", "imp-neg")]))

    def test_invoiced_usage_is_frozen(self):
        sub = self._usage_subscription()
        self._ingest(
            sub,
            [{"product": "API", "quantity": 5, "time": "2026-01-05T00:00:00Z", "key": "frozen"}],
        )
        self._run_cron(date(2026, 2, 1))
        usage = self.env["flex.usage"].search([("key", "=", "frozen")])
        self.assertEqual(usage.state, "invoiced")
        with self.assertRaises(UserError):
            usage.quantity = 50
        with self.assertRaises(UserError):
            usage.unlink()
        with self.assertRaises(ValidationError):
            self.env["flex.usage"].create(
                {
                    "subscription_id": sub.id,
                    "product_id": self.api_calls.id,
                    "quantity": 1,
                    "event_time": "2026-01-05 00:00:00",
                }
            )


def _round(value, decimals):
    """Half away from zero to ``decimals``: the README's one rounding rule, for quantities
    (to the Product Unit of Measure precision) and amounts (to the currency)."""
    return Decimal(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


@tagged("post_install", "-at_install")
class TestUsageLineAgreesWithItsLabel(UsageCommon):
    """README, *Usage-based billing*: the period's quantity is rounded to the *Product Unit
    of Measure* precision before it is rated; each tier's amount is rounded to the
    currency; the line shows quantity × unit price when that is its amount, else one unit
    at the amount with the rule in its label. Expected amounts are computed here."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.compute = cls._create_product(
            name="Compute",
            default_code="CPU",
            flex_unit_label="GB-h",
            flex_aggregation="sum",
            type="service",
            flex_is_subscription=True,
            flex_metered=True,
            taxes_id=[Command.set(cls.tax_21.ids)],
            lst_price=0.0,
        )

    def setUp(self):
        super().setUp()
        self.uom_digits = self.env.ref("product.decimal_product_uom").digits
        self.assertEqual(self.uom_digits, 2)  # Odoo's default, what the examples assume

    def _compute_subscription(self, currency, price_vals, plan=None, lines=()):
        plan = plan or self._create_plan(invoicing_timing="arrears")
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.compute.id,
                "currency_id": currency.id,
                "date_start": date(2025, 1, 1),
                **price_vals,
            }
        )
        return self._create_subscription(
            plan=plan,
            lines=[*lines, (self.compute, 1, None, 0.0)],
            currency_id=currency.id,
        )

    def _events(self, sub, quantities, day="2026-01-10", now=datetime(2026, 1, 31, 12, 0)):
        result = self._ingest(
            sub,
            [
                {
                    "product": self.compute.id,
                    "quantity": quantity,
                    "time": f"{day}T{10 + index:02d}:00:00Z",
                    "key": f"{day}-{index}-{quantity}",
                }
                for index, quantity in enumerate(quantities)
            ],
            now=now,
        )
        self.assertEqual(result["accepted"], len(quantities))

    def assertAgrees(self, line, amount, decimals):
        """``line`` bills ``amount`` (Decimal), its label's amounts add up to it, and Odoo's
        quantity × unit price is it."""
        self.assertEqual(_round(repr(line.price_subtotal), decimals), amount, line.name)
        shown = _round(Decimal(repr(line.quantity)) * Decimal(repr(line.price_unit)), decimals)
        self.assertEqual(shown, amount, line.name)
        detail = line.name.split("): ", 1)[1]
        if "already invoiced" in detail:
            return
        if "minimum charge" in detail:
            self.assertIn(f"(minimum charge {amount})", detail)
            return
        chunks = re.findall(r"= (\d[\d,]*(?:\.\d+)?)", detail)
        self.assertTrue(chunks, line.name)
        total = sum((Decimal(chunk.replace(",", "")) for chunk in chunks), Decimal(0))
        self.assertEqual(total, amount, line.name)

    def _usage_line(self, move):
        line = move.invoice_line_ids.filtered(lambda line: line.product_id == self.compute)
        self.assertEqual(len(line), 1)
        return line

    def test_kwd_volume_quantity_with_more_decimals_than_the_unit_of_measure(self):
        kwd = self.setup_other_currency("KWD")
        self.env.ref("product.decimal_price").digits = 3  # README: 3-decimal currencies
        sub = self._compute_subscription(
            kwd,
            {
                "pricing_model": "volume",
                "price_unit": 0.0,
                "included_quantity": 1,
                "tier_ids": [
                    Command.create({"up_to": 100, "unit_price": 5.6}),
                    Command.create({"open_ended": True, "unit_price": 5.0}),
                ],
            },
        )
        self._events(sub, [4.233, 4.233])
        line = self._usage_line(self._invoice(sub, date(2026, 2, 1)))
        measured = Decimal("4.233") + Decimal("4.233")
        quantity = _round(measured, self.uom_digits)  # 8.47
        billable = quantity - 1  # 7.47 in the first tier (up to 100)
        amount = _round(billable * Decimal("5.6"), 3)  # 41.832
        self.assertEqual((line.quantity, line.price_unit), (float(billable), 5.6))
        self.assertIn(f"{quantity} GB-h ({measured} measured), 1 included:", line.name)
        self.assertIn(f"0–100: {billable} × 5.6 = {amount}", line.name)
        self.assertAgrees(line, amount, 3)

    def test_graduated_tier_amounts_add_up_to_the_line(self):
        sub = self._compute_subscription(
            self.currency,
            {
                "pricing_model": "graduated",
                "price_unit": 0.0,
                "tier_ids": [
                    Command.create({"up_to": 10, "unit_price": 0.0105}),
                    Command.create({"open_ended": True, "unit_price": 0.001}),
                ],
            },
        )
        self._events(sub, [15.004])
        line = self._usage_line(self._invoice(sub, date(2026, 2, 1)))
        quantity = _round(Decimal("15.004"), self.uom_digits)  # 15.00
        first = _round(10 * Decimal("0.0105"), 2)  # 0.105 -> 0.11
        second = _round((quantity - 10) * Decimal("0.001"), 2)  # 0.005 -> 0.01
        # Each tier's amount rounded, the line is their sum: 0.12 (not 0.110 -> 0.11).
        self.assertIn(f"0–10: 10 × 0.0105 = {first}; 10+: 5 × 0.001 = {second}", line.name)
        self.assertEqual((line.quantity, line.price_unit), (1.0, float(first + second)))
        self.assertAgrees(line, first + second, 2)

    def test_yen_quantity_is_rounded_before_rating(self):
        jpy = self.setup_other_currency("JPY")
        sub = self._compute_subscription(jpy, {"pricing_model": "per_unit", "price_unit": 500})
        self._events(sub, [1234.5, 0.067])
        line = self._usage_line(self._invoice(sub, date(2026, 2, 1)))
        measured = Decimal("1234.5") + Decimal("0.067")
        quantity = _round(measured, self.uom_digits)  # 1,234.57
        amount = _round(quantity * 500, 0)  # 617,285 (617,283.5 -> 617,284 unrounded)
        self.assertEqual((line.quantity, line.price_unit), (float(quantity), 500.0))
        self.assertIn(f"1,234.57 GB-h (1,234.567 measured): 1,234.57 × 500 = {amount}", line.name)
        self.assertAgrees(line, amount, 0)

    def test_finer_unit_of_measure_precision_bills_the_measured_quantity(self):
        """README: for fine-grained meters, raise the Product Unit of Measure precision."""
        kwd = self.setup_other_currency("KWD")
        self.env.ref("product.decimal_price").digits = 3
        self.env.ref("product.decimal_product_uom").digits = 3
        sub = self._compute_subscription(
            kwd, {"pricing_model": "per_unit", "price_unit": 5.6, "included_quantity": 1}
        )
        self._events(sub, [4.233, 4.233])
        line = self._usage_line(self._invoice(sub, date(2026, 2, 1)))
        billable = Decimal("8.466") - 1
        amount = _round(billable * Decimal("5.6"), 3)  # 41.8096 -> 41.810
        self.assertEqual((line.quantity, line.price_unit), (float(billable), 5.6))
        self.assertIn(f"8.466 GB-h, 1 included: 7.466 × 5.6 = {amount}", line.name)
        self.assertNotIn("measured", line.name)
        self.assertAgrees(line, amount, 3)

    def test_flat_fee_and_minimum_are_in_the_label(self):
        sub = self._compute_subscription(
            self.currency,
            {
                "pricing_model": "volume",
                "price_unit": 0.0,
                "minimum_charge": 30.0,
                "tier_ids": [
                    Command.create({"up_to": 10, "unit_price": 1.25}),
                    Command.create({"open_ended": True, "unit_price": 1.0, "flat_fee": 5.0}),
                ],
            },
        )
        self._events(sub, [12.345])
        february = self._invoice(sub, date(2026, 2, 1))
        line = self._usage_line(february)
        quantity = _round(Decimal("12.345"), self.uom_digits)  # 12.35
        amount = _round(quantity * 1 + 5, 2)  # 17.35, with the tier's flat fee
        self.assertIn(f"10+: 12.35 × 1 + 5.00 = {amount} (minimum charge 30.00)", line.name)
        self.assertEqual((line.quantity, line.price_unit), (1.0, 30.0))
        self.assertAgrees(line, Decimal("30.00"), 2)
        self._events(sub, [25.005], day="2026-02-10", now=datetime(2026, 2, 28))
        line = self._usage_line(self._invoice(sub, date(2026, 3, 1)))
        amount = _round(_round(Decimal("25.005"), self.uom_digits) + 5, 2)  # 25.01 + 5.00
        self.assertIn(f"10+: 25.01 × 1 + 5.00 = {amount}", line.name)
        self.assertAgrees(line, amount, 2)

    def test_late_event_difference_uses_the_rounded_quantities(self):
        kwd = self.setup_other_currency("KWD")
        self.env.ref("product.decimal_price").digits = 3
        sub = self._compute_subscription(
            kwd, {"pricing_model": "per_unit", "price_unit": 5.6, "included_quantity": 1}
        )
        self._events(sub, [4.233, 4.233])
        february = self._invoice(sub, date(2026, 2, 1))
        billed = _round(
            (_round(Decimal("8.466"), self.uom_digits) - 1) * Decimal("5.6"), 3
        )  # 7.47 × 5.6 = 41.832
        self.assertAgrees(self._usage_line(february), billed, 3)
        self._events(sub, [0.011], day="2026-01-20", now=datetime(2026, 2, 10))
        march = self._invoice(sub, date(2026, 3, 1))
        late = self._usage_line(march)
        january = _round(
            (_round(Decimal("8.477"), self.uom_digits) - 1) * Decimal("5.6"), 3
        )  # 7.48 × 5.6 = 41.888
        self.assertIn(f"7.48 × 5.6 = {january}, minus {billed} already invoiced", late.name)
        self.assertAgrees(late, january - billed, 3)  # 0.056
        # January, invoiced twice, is billed what the rule gives for all its usage.
        total = Decimal(repr(self._usage_line(february).price_subtotal)) + Decimal(
            repr(late.price_subtotal)
        )
        self.assertEqual(total, january)

    def test_usage_billed_at_a_change_and_on_the_final_invoice(self):
        kwd = self.setup_other_currency("KWD")
        self.env.ref("product.decimal_price").digits = 3
        small, big = self._create_plan(name="Small"), self._create_plan(name="Big")
        self.env["flex.price"].create(
            [
                {
                    "plan_id": plan.id,
                    "product_id": self.product_seat.id,
                    "currency_id": kwd.id,
                    "date_start": date(2025, 1, 1),
                    "price_unit": 10.0,
                }
                for plan in (small, big)
            ]
            + [
                {
                    "plan_id": big.id,
                    "product_id": self.compute.id,
                    "currency_id": kwd.id,
                    "date_start": date(2025, 1, 1),
                    "price_unit": 1.5,
                }
            ]
        )
        sub = self._compute_subscription(
            kwd,
            {"pricing_model": "per_unit", "price_unit": 2.345},
            plan=small,
            lines=[(self.product_seat, 1, None, 0.0)],
        )
        self._invoice(sub, date(2026, 1, 1))
        self._events(sub, [1.2345], day="2026-01-05")
        self._events(sub, [2.0051], day="2026-01-20", now=datetime(2026, 1, 25))
        change = self.env["flex.subscription.change"].with_context(flex_today=date(2026, 1, 15))
        change = change.create(
            {"subscription_id": sub.id, "change_type": "plan", "new_plan_id": big.id}
        )
        change.action_confirm()
        split = sub.invoice_ids.filtered(lambda m: m.flex_billing_kind == "usage_split")
        line = self._usage_line(split)
        quantity = _round(Decimal("1.2345"), self.uom_digits)  # 1.23
        amount = _round(quantity * Decimal("2.345"), 3)  # 2.88435 -> 2.884
        self.assertEqual((line.quantity, line.price_unit), (float(quantity), 2.345))
        self.assertAgrees(line, amount, 3)
        sub.with_context(flex_today=date(2026, 1, 25)).action_close_now(
            reason=self.env.ref("subscription_flex.close_reason_too_expensive")
        )
        final = sub.invoice_ids.filtered(lambda m: m.flex_billing_kind == "usage_final")
        line = self._usage_line(final)
        quantity = _round(Decimal("2.0051"), self.uom_digits)  # 2.01
        amount = _round(quantity * Decimal("1.5"), 3)  # 3.015
        self.assertEqual((line.quantity, line.price_unit), (float(quantity), 1.5))
        self.assertAgrees(line, amount, 3)
