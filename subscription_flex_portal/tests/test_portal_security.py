"""Who may see and change what: every route, another customer's ids, CSRF, limits.

A refused request must write nothing: each test compares the subscription (state, plan,
lines, changes, invoices, end date) before and after.
"""

from odoo.tests import tagged

from .common import PortalCommon

ACTIONS = ("quantity", "option_add", "option_remove", "plan", "cancel", "undo")


@tagged("post_install", "-at_install")
class TestPortalSecurity(PortalCommon):
    def setUp(self):
        super().setUp()
        self.authenticate(self.user_portal.login, self.user_portal.login)

    def test_other_customers_subscription_is_not_found(self):
        before = self._snapshot(self.rival_sub)
        # The detail page sends a stranger back to /my, like Odoo's invoices.
        response = self.url_open(self._url(self.rival_sub), allow_redirects=False)
        self.assertEqual(response.status_code, 303)
        self.assertTrue(response.headers["Location"].endswith("/my"))
        for action in ACTIONS:
            with self.subTest(action=action):
                response = self.url_open(self._url(self.rival_sub, action), allow_redirects=False)
                self.assertEqual(response.status_code, 404)
                line = self._seat_line(self.rival_sub)
                response = self._post(
                    self.rival_sub,
                    action,
                    step="preview",
                    line_id=line.id,
                    quantity=6,
                    plan_id=self.plan_yearly.id,
                    reason_id=self.reason.id,
                )
                self.assertEqual(response.status_code, 404)
        self.assertEqual(self._snapshot(self.rival_sub), before)
        # A subscription id that does not exist
        response = self.url_open("/my/subscriptions/999999999/quantity", allow_redirects=False)
        self.assertEqual(response.status_code, 404)

    def test_other_customers_subscription_not_listed(self):
        response = self.url_open("/my/subscriptions")
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.sub.name, response.text)
        self.assertNotIn(self.rival_sub.name, response.text)

    def test_missing_csrf_token_is_refused(self):
        before = self._snapshot(self.sub)
        line = self._seat_line(self.sub)
        response = self._post(self.sub, "quantity", csrf=False, line_id=line.id, quantity=6)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(self._snapshot(self.sub), before)
        # A valid draft confirmed without the token stays a draft.
        response = self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=6)
        self.assertEqual(response.status_code, 200)
        change = self._changes(self.sub)
        self.assertEqual(change.state, "draft")
        response = self._post(self.sub, "quantity", csrf=False, step="confirm", change_id=change.id)
        self.assertEqual(response.status_code, 400)
        self.env.invalidate_all()
        self.assertEqual(change.state, "draft")
        self.assertEqual(self._seat_line(self.sub).quantity, 5)

    def test_quantity_outside_limits_is_refused_with_a_message(self):
        before = self._snapshot(self.sub)
        line = self._seat_line(self.sub)
        for quantity, message in (
            ("11", "must be between 1 and 10"),
            ("0", "must be between 1 and 10"),
            ("-3", "must be between 1 and 10"),
            ("many", "Enter the new quantity as a number."),
            ("nan", "Enter the new quantity as a number."),
            ("5", "This is already the current quantity."),
        ):
            with self.subTest(quantity=quantity):
                response = self._post(
                    self.sub, "quantity", step="preview", line_id=line.id, quantity=quantity
                )
                self.assertEqual(response.status_code, 400)
                self.assertIn(message, response.text)
                self.assertIn("o_flex_portal_error", response.text)
        self.assertEqual(self._snapshot(self.sub), before)

    def test_unknown_line_option_plan_and_reason_are_refused(self):
        before = self._snapshot(self.sub)
        rival_line = self._seat_line(self.rival_sub)
        cases = [
            ("quantity", {"line_id": rival_line.id, "quantity": 6}, "not on your subscription"),
            ("quantity", {"line_id": "x", "quantity": 6}, "not on your subscription"),
            ("option_remove", {"line_id": self._seat_line(self.sub).id}, "is not an option"),
            ("option_add", {"option_id": 0}, "cannot be added"),
            ("plan", {"plan_id": self.plan_monthly.id}, "cannot be switched"),
            ("cancel", {"when": "period_end"}, "Tell us why you cancel."),
            ("cancel", {"when": "tomorrow", "reason_id": self.reason.id}, "not available"),
            ("undo", {}, "no scheduled cancellation"),
        ]
        for action, data, message in cases:
            with self.subTest(action=action, data=data):
                response = self._post(self.sub, action, step="preview", **data)
                self.assertEqual(response.status_code, 400)
                self.assertIn(message, response.text)
        self.assertEqual(self._snapshot(self.sub), before)

    def test_confirming_another_customers_change_is_not_found(self):
        self.authenticate(self.user_rival.login, self.user_rival.login)
        line = self._seat_line(self.rival_sub)
        self._post(self.rival_sub, "quantity", step="preview", line_id=line.id, quantity=6)
        rival_change = self._changes(self.rival_sub)
        self.assertEqual(rival_change.state, "draft")
        self.authenticate(self.user_portal.login, self.user_portal.login)
        before = self._snapshot(self.rival_sub)
        # Through the own subscription's URL, with the other customer's change id.
        response = self._post(self.sub, "quantity", step="confirm", change_id=rival_change.id)
        self.assertEqual(response.status_code, 404)
        response = self._post(self.sub, "quantity", step="confirm", change_id="1 OR 1=1")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(self._snapshot(self.rival_sub), before)
        self.assertEqual(rival_change.state, "draft")

    def test_shared_link_shows_but_does_not_change(self):
        self.sub._portal_ensure_token()
        url = self.sub.get_portal_url()
        self.assertIn("access_token=", url)
        # Another customer (logged in) and a visitor (logged out) can open the link...
        self.authenticate(self.user_rival.login, self.user_rival.login)
        response = self.url_open(url)
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.sub.name, response.text)
        self.assertNotIn("o_flex_portal_change_qty", response.text)
        self.assertNotIn("o_flex_portal_cancel", response.text)
        # ... but not change anything, even with the token.
        line = self._seat_line(self.sub)
        response = self._post(
            self.sub,
            f"quantity?access_token={self.sub.access_token}",
            step="preview",
            line_id=line.id,
            quantity=6,
        )
        self.assertEqual(response.status_code, 404)
        self.authenticate(None, None)
        response = self.url_open(url)
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.sub.name, response.text)
        # A wrong token is no token.
        response = self.url_open(self._url(self.sub) + "?access_token=wrong", allow_redirects=False)
        self.assertEqual(response.status_code, 303)
        # Logged out, a self-service page asks to log in.
        response = self.url_open(self._url(self.sub, "quantity"), allow_redirects=False)
        self.assertEqual(response.status_code, 303)
        self.assertIn("/web/login", response.headers["Location"])
        self.assertEqual(len(self._changes(self.sub)), 0)

    def test_record_rules_for_portal_users(self):
        Subscription = self.env["flex.subscription"].with_user(self.user_portal)
        self.assertEqual(Subscription.search([]), self.sub)
        Line = self.env["flex.subscription.line"].with_user(self.user_portal)
        self.assertEqual(Line.search([]), self.sub.line_ids)
        self.assertFalse(Subscription.has_access("write"))
        self.assertFalse(
            self.env["flex.subscription.change"].with_user(self.user_portal).has_access("create")
        )
