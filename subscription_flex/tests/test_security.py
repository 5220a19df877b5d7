from datetime import date

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import FlexCommon


@tagged("post_install", "-at_install")
class TestSecurity(FlexCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_company = cls.setup_other_company(name="Flex Rival Co")["company"]
        common = {"company_id": cls.company.id, "company_ids": [(6, 0, cls.company.ids)]}
        cls.user = new_test_user(
            cls.env, login="flex_sec_user", groups="subscription_flex.group_flex_user", **common
        )
        cls.manager = new_test_user(
            cls.env,
            login="flex_sec_manager",
            groups="subscription_flex.group_flex_manager",
            **common,
        )
        cls.outsider = new_test_user(
            cls.env,
            login="flex_sec_outsider",
            groups="subscription_flex.group_flex_manager",
            company_id=cls.other_company.id,
            company_ids=[(6, 0, cls.other_company.ids)],
        )
        cls.employee = new_test_user(
            cls.env, login="flex_sec_employee", groups="base.group_user", **common
        )
        cls.sub = cls._create_subscription(start=date(2026, 1, 1))

    def test_user_manages_subscriptions_but_not_plans(self):
        sub = self.sub.with_user(self.user)
        self.assertEqual(sub.partner_id, self.partner)
        sub.write({"grandfathered": True})
        new = self.Subscription.with_user(self.user).create(
            {
                "partner_id": self.partner.id,
                "plan_id": self.plan_monthly.id,
                "line_ids": [(0, 0, {"product_id": self.product_seat.id, "quantity": 1})],
            }
        )
        self.assertEqual(new.state, "draft")
        self.assertTrue(self.plan_monthly.with_user(self.user).name)
        with self.assertRaises(AccessError):
            self.env["flex.plan"].with_user(self.user).create({"name": "Sneaky"})
        with self.assertRaises(AccessError):
            self.plan_monthly.with_user(self.user).write({"billing_interval": 2})
        with self.assertRaises(AccessError):
            self.env["flex.price"].with_user(self.user).create(
                {
                    "plan_id": self.plan_monthly.id,
                    "product_id": self.product_seat.id,
                    "price_unit": 1.0,
                }
            )
        with self.assertRaises(AccessError):
            new.unlink()

    def test_manager_configures_and_deletes(self):
        plan = self.env["flex.plan"].with_user(self.manager).create({"name": "Manager plan"})
        plan.write({"billing_interval": 3})
        draft = self._create_subscription(confirm=False).with_user(self.manager)
        draft.unlink()
        self.assertFalse(draft.exists())
        moves = (
            self.sub.with_user(self.manager)
            .with_context(flex_today=date(2026, 1, 1))
            ._create_recurring_invoices(date(2026, 1, 1))
        )
        self.assertEqual(len(moves), 1)

    def test_other_company_sees_nothing(self):
        Subscription = self.Subscription.with_user(self.outsider)
        self.assertFalse(Subscription.search([("id", "=", self.sub.id)]))
        with self.assertRaises(AccessError):
            self.sub.with_user(self.outsider).read(["name"])
        with self.assertRaises(AccessError):
            self.sub.line_ids.with_user(self.outsider).read(["price_unit"])
        # Shared plans (no company) are visible; company plans are not.
        plan_co1 = self._create_plan(company_id=self.company.id)
        visible = self.env["flex.plan"].with_user(self.outsider).search([])
        self.assertIn(self.plan_monthly, visible)
        self.assertNotIn(plan_co1, visible)

    def test_plain_employee_has_no_access(self):
        with self.assertRaises(AccessError):
            self.sub.with_user(self.employee).read(["name"])
        with self.assertRaises(AccessError):
            self.Subscription.with_user(self.employee).create(
                {
                    "partner_id": self.partner.id,
                    "plan_id": self.plan_monthly.id,
                }
            )
        # Smart buttons degrade to 0 instead of raising for users without the app.
        self.assertEqual(self.partner.with_user(self.employee).flex_subscription_count, 0)
