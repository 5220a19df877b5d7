from datetime import date

from odoo import Command
from odoo.tests import freeze_time, tagged

from .common import FlexCommon
from .test_usage import UsageCommon


class ReminderMixin:
    def _mails(self, sub=None, template=None):
        domain = [
            ("model", "in", ("flex.subscription", "flex.subscription.change", "account.move"))
        ]
        mails = self.env["mail.mail"].search(domain)
        if template:
            mails = mails.filtered(lambda m: m.subject and template in m.subject)
        if sub:
            logs = self.env["flex.reminder.log"].search([("subscription_id", "=", sub.id)])
            mails = mails.filtered(lambda m: m in logs.mail_id)
        return mails

    def _run(self, day, trigger=None, **kwargs):
        """Run the cron on ``day``; the reminders it sent (of ``trigger`` only if given)."""
        with freeze_time(day):
            logs = self.Subscription._cron_send_reminders(**kwargs)
        return logs.filtered(lambda log: log.trigger == trigger) if trigger else logs

    def _rule(self, plan, trigger):
        return plan.with_context(active_test=False).reminder_rule_ids.filtered(
            lambda rule: rule.trigger == trigger
        )


@tagged("post_install", "-at_install")
class TestReminders(ReminderMixin, FlexCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan_yearly = cls._create_plan(name="Yearly", billing_unit="year")
        cls.partner.email = "customer@example.com"
        # Only the rules a test looks at: invoices of these tests stay unpaid.
        for plan in (cls.plan_yearly, cls.plan_monthly):
            plan.reminder_rule_ids.filtered(lambda r: r.trigger == "invoice_unpaid").active = False

    def test_defaults_installed_with_each_plan(self):
        rules = self.plan_yearly.with_context(active_test=False).reminder_rule_ids
        self.assertEqual(
            set(rules.mapped("trigger")),
            {
                "period_end",
                "trial_end",
                "term_end",
                "invoice_unpaid",
                "usage_threshold",
                "change_applied",
                "cancellation",
            },
        )
        # A renewal reminder a month ahead for a yearly plan; off for a monthly one.
        self.assertEqual(self._rule(self.plan_yearly, "period_end").offset_days, 30)
        self.assertTrue(self._rule(self.plan_yearly, "period_end").active)
        self.assertFalse(self._rule(self.plan_monthly, "period_end").active)
        copy = self.plan_yearly.copy()
        self.assertEqual(len(copy.with_context(active_test=False).reminder_rule_ids), 7)

    def test_renewal_reminder_on_the_day_once_with_catch_up(self):
        sub = self._create_subscription(plan=self.plan_yearly, start=date(2027, 1, 1))
        self._invoice(sub, date(2027, 1, 1))
        # Renewal on 1 January 2028, reminder 30 days ahead: from 2 December 2027.
        self.assertFalse(self._run("2027-12-01 08:00:00"))
        logs = self._run("2027-12-02 08:00:00")
        self.assertEqual(len(logs), 1)
        mail = logs.mail_id
        self.assertEqual(mail.state, "outgoing")  # queued: Odoo's mail queue sends it
        self.assertEqual(mail.recipient_ids, self.partner)
        self.assertIn("renews on 01/01/2028", mail.subject)
        self.assertIn("30.00", mail.body_html)  # 3 seats × 10.00
        self.assertFalse(self._run("2027-12-02 09:00:00"))  # a re-run sends nothing twice
        self.assertFalse(self._run("2027-12-03 08:00:00"))
        self.assertEqual(len(sub.reminder_log_ids), 1)

    def test_missed_days_catch_up_once_and_past_events_are_not_sent(self):
        late = self._create_subscription(plan=self.plan_yearly, start=date(2027, 1, 1))
        self._invoice(late, date(2027, 1, 1))
        # The cron did not run from 2 to 9 December: the 10th sends one reminder.
        self.assertEqual(len(self._run("2027-12-10 08:00:00")), 1)
        self.assertFalse(self._run("2027-12-11 08:00:00"))
        gone = self._create_subscription(plan=self.plan_yearly, start=date(2027, 1, 1))
        # Down for the whole window: nothing is sent after the renewal day.
        self._invoice(gone, date(2027, 1, 1))
        with freeze_time("2028-01-02"):
            self._invoice(gone, date(2028, 1, 2))
        self.assertFalse(
            self._run("2028-01-02 08:00:00").filtered(lambda log: log.subscription_id == gone)
        )

    def test_disabled_rule_sends_nothing(self):
        self._rule(self.plan_yearly, "period_end").active = False
        sub = self._create_subscription(plan=self.plan_yearly, start=date(2027, 1, 1))
        self._invoice(sub, date(2027, 1, 1))
        self.assertFalse(self._run("2027-12-15 08:00:00"))
        self.assertFalse(sub.reminder_log_ids)

    def test_partner_language(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        self.env["res.lang"]._activate_lang("it_IT")
        self.env["ir.module.module"]._load_module_terms(["subscription_flex"], ["fr_FR", "it_IT"])
        french = self.partner.copy({"name": "Client", "lang": "fr_FR", "email": "fr@example.com"})
        italian = self.partner.copy({"name": "Cliente", "lang": "it_IT", "email": "it@example.com"})
        subs = {}
        for partner in (french, italian, self.partner):
            subs[partner.lang] = self._create_subscription(
                plan=self.plan_yearly, start=date(2027, 1, 1), partner=partner
            )
            self._invoice(subs[partner.lang], date(2027, 1, 1))
        logs = self._run("2027-12-02 08:00:00")
        by_lang = {log.partner_id.lang: log.mail_id for log in logs}
        self.assertEqual(by_lang["fr_FR"].recipient_ids, french)
        self.assertIn("se renouvelle le 01/01/2028", by_lang["fr_FR"].subject)
        self.assertIn("Bonjour", by_lang["fr_FR"].body_html)
        self.assertIn("si rinnova il 01/01/2028", by_lang["it_IT"].subject)
        self.assertIn("Buongiorno", by_lang["it_IT"].body_html)
        self.assertIn("renews on 01/01/2028", by_lang["en_US"].subject)

    def test_trial_and_fixed_term_ending(self):
        trial_plan = self._create_plan(name="Trial", trial_length=14)
        trial = self._create_subscription(plan=trial_plan, start=date(2027, 3, 1))
        # Trial ends (first billed day) on 15 March; reminder 3 days ahead, the 12th.
        self.assertFalse(self._run("2027-03-11 08:00:00"))
        logs = self._run("2027-03-12 08:00:00", "trial_end")
        self.assertEqual(logs.subscription_id, trial)
        self.assertIn("trial ends on 03/15/2027", logs.mail_id.subject)
        fixed_plan = self._create_plan(name="Fixed", term_type="fixed", term_length=12)
        fixed = self._create_subscription(plan=fixed_plan, start=date(2027, 1, 1))
        self._invoice(fixed, date(2027, 1, 1))
        with freeze_time("2027-12-02"):
            self._invoice(fixed, date(2027, 12, 1))
        logs = self._run("2027-12-02 08:00:00", "term_end")
        self.assertEqual(logs.subscription_id, fixed)
        self.assertIn("ends on 12/31/2027", logs.mail_id.subject)

    def test_anniversary(self):
        rule = self._rule(self.plan_monthly, "period_end").copy(
            {
                "name": "Anniversary",
                "trigger": "anniversary",
                "offset_days": 60,
                "active": True,
                "template_id": self.env.ref("subscription_flex.mail_template_flex_renewal").id,
            }
        )
        sub = self._create_subscription(start=date(2027, 3, 10))
        # First anniversary 10 March 2028; 60 days ahead is 10 January 2028.
        self.assertFalse(self._run("2028-01-09 08:00:00", "anniversary"))
        logs = self._run("2028-01-10 08:00:00", "anniversary")
        self.assertEqual((logs.subscription_id, logs.rule_id, logs.key), (sub, rule, "2028-03-10"))
        self.assertFalse(self._run("2028-03-09 08:00:00", "anniversary"))
        self.assertEqual(len(self._run("2029-01-15 08:00:00", "anniversary")), 1)

    def test_unpaid_invoice(self):
        self._rule(self.plan_monthly, "invoice_unpaid").active = True
        sub = self._create_subscription(start=date(2027, 3, 1))
        with freeze_time("2027-03-01"):
            invoice = self._invoice(sub, date(2027, 3, 1))
        self.assertEqual(invoice.invoice_date_due, date(2027, 3, 1))
        self.assertFalse(self._run("2027-03-07 08:00:00"))
        logs = self._run("2027-03-08 08:00:00")  # due + 7 days
        self.assertEqual(logs.res_id, invoice.id)
        self.assertIn(f"invoice {invoice.name} is unpaid", logs.mail_id.subject)
        self.assertIn("36.30", logs.mail_id.body_html)  # 30.00 + 21%
        # Paid invoices are left alone.
        with freeze_time("2027-04-01"):
            second = self._invoice(sub, date(2027, 4, 1))
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=second.ids
        ).create({"payment_date": date(2027, 4, 2)})._create_payments()
        self.assertFalse(self._run("2027-04-09 08:00:00"))

    def test_change_and_cancellation_confirmations(self):
        sub = self._create_subscription(
            start=date(2027, 3, 1), lines=[(self.product_seat, 5, 10.0, 0.0)]
        )
        self._invoice(sub, date(2027, 3, 1))
        change = self.env["flex.subscription.change"].with_context(flex_today=date(2027, 3, 17))
        change = change.create(
            {
                "subscription_id": sub.id,
                "line_ids": [
                    Command.create({"subscription_line_id": sub.line_ids.id, "quantity": 8})
                ],
            }
        )
        change.action_confirm()
        mail = self._mails(sub, "confirmed")
        self.assertEqual(len(mail), 1)
        # -24.19 and 38.71, an invoice of 17.57 (see test_changes)
        for amount in ("24.19", "38.71", "17.57", "80.00"):
            self.assertIn(amount, mail.body_html)
        sub.with_context(flex_today=date(2027, 3, 18)).action_request_close()
        cancel = self._mails(sub, "cancellation")
        self.assertEqual(len(cancel), 1)
        self.assertIn("03/31/2027", cancel.body_html)  # last day of service
        self._rule(self.plan_monthly, "cancellation").active = False
        sub.with_context(flex_today=date(2027, 3, 19)).action_undo_close()
        sub.with_context(flex_today=date(2027, 3, 19)).action_request_close()
        self.assertEqual(len(self._mails(sub, "cancellation")), 1)

    def test_batches_leave_the_rest_to_the_next_call(self):
        subs = [
            self._create_subscription(plan=self.plan_yearly, start=date(2027, 1, 1))
            for _i in range(3)
        ]
        for sub in subs:
            self._invoice(sub, date(2027, 1, 1))
        self.assertEqual(len(self._run("2027-12-02 08:00:00", batch_size=2)), 2)
        self.assertEqual(len(self._run("2027-12-02 08:00:00", batch_size=2)), 1)
        self.assertFalse(self._run("2027-12-02 08:00:00", batch_size=2))


@tagged("post_install", "-at_install")
class TestUsageReminder(ReminderMixin, UsageCommon):
    def test_usage_threshold(self):
        plan = self.plan
        sub = self._usage_subscription()
        self._invoice(sub, date(2026, 1, 1))
        # 1,000 API calls included; 80% is 800.
        self._ingest(
            sub, [{"product": "API", "quantity": 700, "time": "2026-01-03T10:00:00Z", "key": "u1"}]
        )
        self.assertFalse(self._run("2026-01-10 08:00:00", "usage_threshold"))
        self._ingest(
            sub, [{"product": "API", "quantity": 150, "time": "2026-01-11T10:00:00Z", "key": "u2"}]
        )
        logs = self._run("2026-01-12 08:00:00", "usage_threshold")
        self.assertEqual(len(logs), 1)
        self.assertIn("850", logs.mail_id.body_html)
        self.assertIn("85%", logs.mail_id.subject)
        self.assertFalse(self._run("2026-01-13 08:00:00", "usage_threshold"))
        self.assertEqual(self._rule(plan, "usage_threshold").threshold_percent, 80.0)
