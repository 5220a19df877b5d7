"""Browser tours (headless Chromium): add a seat, switch monthly to yearly, cancel and
undo, as a customer clicks through the portal on a phone-sized screen."""

from decimal import Decimal

from odoo.tests import tagged

from .common import PortalCommon, money

TAX = Decimal("0.21")


@tagged("post_install", "-at_install")
class TestPortalTours(PortalCommon):
    browser_size = "390x844"  # a phone

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.reason.name = "Too expensive (tours)"

    def test_tour_add_seat(self):
        _start, _end, left, days = self._period()
        self.start_tour("/my/subscriptions", "flex_portal_add_seat", login=self.user_portal.login)
        self.env.invalidate_all()
        change = self._changes(self.sub)
        self.assertEqual((change.state, change.source), ("applied", "portal"))
        self.assertEqual(self._seat_line(self.sub).quantity, 6)
        credit = money(Decimal(-50) * left / days)
        charge = money(Decimal(60) * left / days)
        total = credit + charge + money(credit * TAX) + money(charge * TAX)
        self.assertAlmostEqual(change.move_id.amount_total, float(total), places=2)

    def test_tour_switch_yearly(self):
        self.start_tour(
            "/my/subscriptions", "flex_portal_switch_yearly", login=self.user_portal.login
        )
        self.env.invalidate_all()
        self.assertEqual(self.sub.plan_id, self.plan_yearly)
        self.assertEqual(self._changes(self.sub).change_type, "plan")

    def test_tour_cancel_and_undo(self):
        self.start_tour(
            "/my/subscriptions", "flex_portal_cancel_undo", login=self.user_portal.login
        )
        self.env.invalidate_all()
        self.assertEqual(self.sub.state, "active")
        self.assertFalse(self.sub.end_date)
        changes = self._changes(self.sub)
        self.assertEqual(sorted(changes.mapped("change_type")), ["cancel_end", "undo_cancel"])
        self.assertEqual(set(changes.mapped("state")), {"applied"})
