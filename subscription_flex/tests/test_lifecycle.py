from datetime import date

from odoo.exceptions import UserError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import FlexCommon


@tagged("post_install", "-at_install")
class TestLifecycle(FlexCommon):
    def test_confirm_without_trial_is_active_and_due_on_start(self):
        sub = self._create_subscription(start=date(2026, 1, 15))
        self.assertEqual(sub.state, "active")
        self.assertEqual(sub.next_invoice_date, date(2026, 1, 15))
        self.assertFalse(sub.trial_end_date)
        self.assertTrue(sub.name.startswith("SUB/"))

    def test_confirm_without_lines_fails_and_writes_nothing(self):
        sub = self._create_subscription(lines=[], confirm=False)
        with self.assertRaises(UserError):
            sub.action_confirm()
        self.assertEqual(sub.state, "draft")
        self.assertFalse(sub.next_invoice_date)

    def test_trial_is_not_invoiced_then_becomes_active(self):
        plan = self._create_plan(trial_length=14, trial_unit="day")
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        self.assertEqual(sub.state, "trial")
        self.assertEqual(sub.trial_end_date, date(2026, 1, 15))
        self.assertEqual(sub.next_invoice_date, date(2026, 1, 15))
        self.assertFalse(self._invoice(sub, date(2026, 1, 14)))
        self.assertEqual(sub.state, "trial")
        move = self._invoice(sub, date(2026, 1, 15))
        self.assertEqual(sub.state, "active")
        self.assertEqual(
            (move.flex_period_start, move.flex_period_end), (date(2026, 1, 15), date(2026, 2, 14))
        )

    def test_cancel_during_trial_closes_at_once(self):
        plan = self._create_plan(trial_length=1, trial_unit="month", commitment_length=12)
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        sub.with_context(flex_today=date(2026, 1, 10)).action_request_close(
            reason=self.env.ref("subscription_flex.close_reason_too_expensive")
        )
        self.assertEqual(sub.state, "closed")
        self.assertEqual(sub.close_date, date(2026, 1, 10))
        self.assertFalse(self._recurring_invoices(sub))

    def test_pause_stops_invoicing_and_resume_reanchors(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        self._invoice(sub, date(2026, 1, 1))
        sub.with_context(flex_today=date(2026, 1, 20)).action_pause()
        self.assertEqual(sub.state, "paused")
        self.assertFalse(self._run_cron(date(2026, 3, 10)))
        self.assertEqual(len(self._recurring_invoices(sub)), 1)
        sub.with_context(flex_today=date(2026, 3, 10)).action_resume()
        self.assertEqual(sub.state, "active")
        self.assertEqual(sub.next_invoice_date, date(2026, 3, 10))
        self._run_cron(date(2026, 4, 10))
        periods = [(m.flex_period_start, m.flex_period_end) for m in self._recurring_invoices(sub)]
        self.assertEqual(
            periods,
            [
                (date(2026, 1, 1), date(2026, 1, 31)),
                (date(2026, 3, 10), date(2026, 4, 9)),
                (date(2026, 4, 10), date(2026, 5, 9)),
            ],
        )

    def test_resume_within_paid_period_keeps_schedule(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        self._invoice(sub, date(2026, 1, 1))
        sub.with_context(flex_today=date(2026, 1, 10)).action_pause()
        sub.with_context(flex_today=date(2026, 1, 20)).action_resume()
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 1))

    def test_pause_and_resume_refuse_wrong_states(self):
        sub = self._create_subscription(confirm=False)
        with self.assertRaises(UserError):
            sub.action_pause()
        sub.action_confirm()
        with self.assertRaises(UserError):
            sub.action_resume()

    def test_commitment_and_notice_decide_the_end(self):
        plan = self._create_plan(
            commitment_length=12, commitment_unit="month", notice_length=1, notice_unit="month"
        )
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        self.assertEqual(
            sub.with_context(flex_today=date(2026, 3, 10)).earliest_end_date, date(2027, 1, 1)
        )
        self.assertEqual(
            sub.with_context(flex_today=date(2027, 3, 10)).earliest_end_date, date(2027, 5, 1)
        )
        self.assertIn("minimum term 12 months", sub.end_rule.lower())
        self.assertIn("notice 1 months", sub.end_rule.lower())
        self.assertIn(
            "If cancelled today, the service would end on 01/01/2027 "
            "(last day of service: 12/31/2026)",
            sub.with_context(flex_today=date(2026, 3, 10)).end_rule_summary,
        )
        sub.with_context(flex_today=date(2026, 3, 10)).action_request_close()
        self.assertEqual(sub.state, "to_close")
        self.assertEqual(sub.end_date, date(2027, 1, 1))
        self.assertIn("The service ends on 01/01/2027", sub.end_rule_summary)

    def test_requested_later_end_date_is_rounded_to_period_end(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        sub.with_context(flex_today=date(2026, 2, 3)).action_request_close(
            requested_date=date(2026, 4, 12)
        )
        self.assertEqual(sub.end_date, date(2026, 5, 1))

    def test_to_close_invoices_until_end_then_closes(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        self._invoice(sub, date(2026, 1, 1))
        sub.with_context(flex_today=date(2026, 1, 20)).action_request_close(
            reason=self.env.ref("subscription_flex.close_reason_competitor")
        )
        self.assertEqual(sub.end_date, date(2026, 2, 1))
        self.assertFalse(self._invoice(sub, date(2026, 3, 1)))
        self.Subscription.with_context(flex_today=date(2026, 2, 1))._cron_update_lifecycle()
        self.assertEqual(sub.state, "closed")
        self.assertEqual(sub.close_date, date(2026, 2, 1))
        self.assertEqual(
            sub.close_reason_id, self.env.ref("subscription_flex.close_reason_competitor")
        )
        self.assertEqual(len(self._recurring_invoices(sub)), 1)

    def test_undo_close(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        sub.with_context(flex_today=date(2026, 1, 20)).action_request_close()
        sub.action_undo_close()
        self.assertEqual(sub.state, "active")
        self.assertFalse(sub.end_date)
        with self.assertRaises(UserError):
            sub.action_undo_close()

    def test_fixed_term_auto_renews(self):
        plan = self._create_plan(
            term_type="fixed", term_length=3, term_unit="month", auto_renew=True
        )
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        self.assertEqual(sub.term_end_date, date(2026, 4, 1))
        self.assertFalse(sub.end_date)
        self._run_cron(date(2026, 4, 15))
        self.Subscription.with_context(flex_today=date(2026, 4, 15))._cron_update_lifecycle()
        self.assertEqual(sub.state, "active")
        self.assertEqual(sub.term_end_date, date(2026, 7, 1))
        self.assertEqual(len(self._recurring_invoices(sub)), 4)
        self.assertTrue(sub.message_ids.filtered(lambda m: "Term renewed" in (m.body or "")))

    def test_fixed_term_without_renewal_closes_at_term_end(self):
        plan = self._create_plan(
            term_type="fixed", term_length=2, term_unit="month", auto_renew=False
        )
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        self.assertEqual(sub.end_date, date(2026, 3, 1))
        self._run_cron(date(2026, 5, 1))
        self.assertEqual(sub.state, "closed")
        self.assertEqual(sub.close_date, date(2026, 3, 1))
        self.assertEqual(
            sub.close_reason_id, self.env.ref("subscription_flex.close_reason_end_of_term")
        )
        self.assertEqual(len(self._recurring_invoices(sub)), 2)

    def test_fixed_term_cancellation_ends_at_term_end(self):
        plan = self._create_plan(
            term_type="fixed",
            term_length=12,
            term_unit="month",
            notice_length=2,
            notice_unit="month",
        )
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        # Notice runs to 15 Jan 2027: past the first term's end, so the second term's.
        sub.with_context(flex_today=date(2026, 11, 15)).action_request_close()
        self.assertEqual(sub.end_date, date(2028, 1, 1))
        sub.action_undo_close()
        sub.with_context(flex_today=date(2026, 9, 1)).action_request_close()
        self.assertEqual(sub.end_date, date(2027, 1, 1))

    def test_close_now_needs_manager(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        user = new_test_user(
            self.env,
            login="flex_user_close",
            groups="subscription_flex.group_flex_user",
            company_id=self.company.id,
            company_ids=[(6, 0, self.company.ids)],
        )
        with self.assertRaises(UserError):
            sub.with_user(user).action_close_now()
        self.assertEqual(sub.state, "active")
        sub.with_context(flex_today=date(2026, 2, 10)).action_close_now()
        self.assertEqual(sub.state, "closed")
        self.assertEqual(sub.close_date, date(2026, 2, 10))

    def test_only_drafts_can_be_deleted(self):
        sub = self._create_subscription()
        with self.assertRaises(UserError):
            sub.unlink()
        draft = self._create_subscription(confirm=False)
        draft.unlink()
        self.assertFalse(draft.exists())

    def test_bad_plan_values_are_refused(self):
        with self.assertRaises(ValidationError):
            self._create_plan(term_type="fixed", term_length=0)
        with self.assertRaises(Exception):  # noqa: B017 - CHECK constraint (psycopg2 IntegrityError)
            with self.env.cr.savepoint():
                self._create_plan(billing_interval=0)
