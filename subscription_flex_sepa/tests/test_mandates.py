from datetime import date

from odoo.exceptions import UserError, ValidationError
from odoo.tests import Form, freeze_time, tagged

from .common import SepaCommon


@tagged("post_install", "-at_install")
class TestMandates(SepaCommon):
    def test_reference_generated_checked_and_unique(self):
        partner, account = self._debtor("Debtor", "de")
        mandate = self._mandate(partner, account)
        self.assertTrue(mandate.reference.startswith("FLEX-MDT-"))
        self.assertEqual(mandate.state, "valid")
        # Imported legacy mandates keep their reference, if it is a valid UMR.
        legacy = self._mandate(partner, account, reference="LEGACY 2019/0042")
        self.assertEqual(legacy.reference, "LEGACY 2019/0042")
        with self.assertRaisesRegex(ValidationError, "at most 35 characters"):
            self._mandate(partner, account, reference="MANDAT_ÉTÉ")
        with self.assertRaises(Exception):  # noqa: B017 - the database's unique constraint
            with self.env.cr.savepoint():
                self._mandate(partner, account, reference="LEGACY 2019/0042")

    def test_iban_and_signature_required(self):
        partner = self.env["res.partner"].create({"name": "No IBAN"})
        bad = self.env["res.partner.bank"].create(
            {"acc_number": "12345678", "partner_id": partner.id}
        )
        with self.assertRaisesRegex(ValidationError, "not a valid IBAN"):
            self._mandate(partner, bad)
        partner, account = self._debtor("Unsigned", "fr")
        mandate = self._mandate(partner, account, validate=False, signature_date=False)
        with self.assertRaisesRegex(UserError, "signature date"):
            mandate.action_validate()
        self.assertEqual(mandate.state, "draft")

    def test_creditor_identifier_checked(self):
        with self.assertRaisesRegex(ValidationError, "not a valid SEPA creditor identifier"):
            self.company.flex_sepa_creditor_id = "DE99ZZZ09999999999"

    def test_settings_form(self):
        form = Form(self.env["res.config.settings"])
        form.flex_sepa_prenotification_days = 3
        form.flex_sepa_pain_version = "pain.008.001.02"
        form.save().execute()
        self.assertEqual(self.company.flex_sepa_prenotification_days, 3)
        self.assertEqual(self.company.flex_sepa_pain_version, "pain.008.001.02")
        self.assertEqual(
            self.env["res.config.settings"].create({}).flex_sepa_creditor_id, "DE98ZZZ09999999999"
        )

    def test_sequence_types(self):
        partner, account = self._debtor("Recurring", "de")
        mandate = self._mandate(partner, account)
        self.assertEqual(mandate.next_sequence_type, "FRST")
        mandate._register_debits(date(2027, 3, 8))
        self.assertEqual(mandate.next_sequence_type, "RCUR")
        self.company.flex_sepa_first_sequence = "rcur"
        fresh = self._mandate(partner, account)
        self.assertEqual(fresh.next_sequence_type, "RCUR")
        oneoff = self._mandate(partner, account, recurrence="oneoff")
        self.assertEqual(oneoff.next_sequence_type, "OOFF")
        oneoff._register_debits(date(2027, 3, 8))
        self.assertEqual(oneoff.state, "closed")

    def test_states(self):
        partner, account = self._debtor("States", "at")
        mandate = self._mandate(partner, account)
        mandate.action_suspend()
        self.assertEqual(mandate.state, "suspended")
        mandate.action_validate()  # the customer sorted it out
        self.assertEqual(mandate.state, "valid")
        mandate.action_revoke()
        self.assertEqual(mandate.state, "revoked")
        with self.assertRaisesRegex(UserError, "Only draft or suspended"):
            mandate.action_validate()
        mandate.action_close()
        self.assertEqual(mandate.state, "closed")
        self.assertEqual(mandate._masked_iban(), "AT61 **** 3201")

    def test_expiry_after_36_months_without_collection(self):
        partner, account = self._debtor("Sleeper", "it")
        used = self._mandate(partner, account)
        used._register_debits(date(2027, 3, 8))
        never = self._mandate(partner, account)  # signed 1 December 2026, never used
        self.assertEqual(used.expiry_date, date(2030, 3, 8))
        self.assertEqual(never.expiry_date, date(2029, 12, 1))
        Mandate = self.env["flex.sepa.mandate"]
        with freeze_time("2029-11-30"):
            self.assertFalse(Mandate._cron_expire() & (used | never))
        with freeze_time("2029-12-01"):
            self.assertEqual(Mandate._cron_expire() & (used | never), never)
        with freeze_time("2030-03-08"):
            self.assertEqual(Mandate._cron_expire() & (used | never), used)
        self.assertEqual((used.state, never.state), ("expired", "expired"))

    def test_amendment_recorded_once_a_debit_was_made(self):
        partner, account = self._debtor("Mover", "de")
        mandate = self._mandate(partner, account)
        other = self.env["res.partner.bank"].create(
            {"acc_number": "DE02500105170137075030", "partner_id": partner.id}
        )
        mandate.partner_bank_id = other  # before any debit: nothing to report
        self.assertFalse(mandate.amended_iban)
        mandate._register_debits(date(2027, 3, 8))
        mandate.partner_bank_id = account
        self.assertEqual(mandate.amended_iban, "DE02500105170137075030")
        mandate._register_debits(date(2027, 4, 8))
        self.assertFalse(mandate.amended_iban)  # reported with that collection

    def test_subscription_picks_the_valid_mandate(self):
        partner, account = self._debtor("Payer", "nl")
        sub = self._sepa_subscription(partner)
        self.assertFalse(sub.sepa_mandate_id)
        mandate = self._mandate(partner, account)
        sub.invalidate_recordset(["sepa_mandate_id"])
        self.assertEqual(sub.sepa_mandate_id, mandate)
        mandate.action_suspend()
        sub.invalidate_recordset(["sepa_mandate_id"])
        self.assertFalse(sub.sepa_mandate_id)
