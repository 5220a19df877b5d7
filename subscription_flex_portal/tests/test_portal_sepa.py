"""Signing a SEPA mandate online (subscription_flex_sepa installed: the optional hook)."""

from odoo.tests import tagged

from .common import PortalCommon

IBAN = "DE89 3704 0044 0532 0130 00"


@tagged("post_install", "-at_install")
class TestPortalSepa(PortalCommon):
    def setUp(self):
        super().setUp()
        if "flex.sepa.mandate" not in self.env:
            self.skipTest("subscription_flex_sepa is not installed")
        self.authenticate(self.user_portal.login, self.user_portal.login)
        self.Mandate = self.env["flex.sepa.mandate"]

    def _mandates(self, partner=None):
        return self.Mandate.search([("partner_id", "=", (partner or self.customer).id)])

    def test_sign_a_mandate(self):
        page = self.url_open(self._url(self.sub)).text
        self.assertIn("o_flex_portal_mandate_sign", page)
        form = self.url_open(self._url(self.sub, "mandate"))
        self.assertEqual(form.status_code, 200)
        self.assertIn("By signing this mandate form, you authorise", form.text)
        self.assertFalse(self._mandates())
        response = self._post(
            self.sub, "mandate", holder="Portal Customer Co", iban=IBAN, consent="1"
        )
        self.assertEqual(response.status_code, 200, response.text[-1500:])
        mandate = self._mandates()
        self.assertEqual(len(mandate), 1)
        self.assertEqual(mandate.state, "valid")
        self.assertEqual(mandate.partner_bank_id.sanitized_acc_number, IBAN.replace(" ", ""))
        self.assertEqual(mandate.partner_bank_id.partner_id, self.customer)
        self.assertEqual(mandate.signature_date, self.today)
        self.assertEqual(self.sub.payment_method, "sepa")
        self.assertIn(mandate.reference, response.text)
        page = self.url_open(self._url(self.sub)).text
        self.assertIn(mandate.reference, page)
        self.assertIn("DE89 **** 3000", page)
        # The signed mandate as a document (HTML in test mode, PDF otherwise).
        pdf = self.url_open(self._url(self.sub, "mandate/pdf"))
        self.assertEqual(pdf.status_code, 200)
        self.assertIn(mandate.reference, pdf.text)
        # A change invoiced afterwards says it is collected by direct debit.
        line = self._seat_line(self.sub)
        self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=6)
        change = self._changes(self.sub)
        result = self._post(self.sub, "quantity", step="confirm", change_id=change.id)
        self.assertIn(f"SEPA direct debit (mandate {mandate.reference})", result.text)

    def test_refused_signatures_write_nothing(self):
        cases = [
            ({"holder": "Portal Customer Co", "iban": IBAN}, "Tick the box"),
            ({"holder": "Portal Customer Co", "iban": "DE00 1234", "consent": "1"}, "IBAN"),
            ({"holder": "", "iban": IBAN, "consent": "1"}, "account holder"),
        ]
        banks = self.env["res.partner.bank"].search_count([])
        for data, message in cases:
            with self.subTest(data=data):
                response = self._post(self.sub, "mandate", **data)
                self.assertEqual(response.status_code, 400)
                self.assertIn(message, response.text)
        response = self._post(self.sub, "mandate", csrf=False, holder="X", iban=IBAN, consent="1")
        self.assertEqual(response.status_code, 400)
        self.assertFalse(self._mandates())
        self.assertEqual(self.env["res.partner.bank"].search_count([]), banks)
        self.assertEqual(self.sub.payment_method, "manual")

    def test_other_customer_cannot_sign_or_read(self):
        self._post(self.sub, "mandate", holder="Portal Customer Co", iban=IBAN, consent="1")
        self.assertTrue(self._mandates())
        self.authenticate(self.user_rival.login, self.user_rival.login)
        self.assertEqual(self.url_open(self._url(self.sub, "mandate/pdf")).status_code, 404)
        response = self._post(self.sub, "mandate", holder="Rival", iban=IBAN, consent="1")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(len(self._mandates()), 1)
        self.assertFalse(self._mandates(self.rival))


@tagged("post_install", "-at_install")
class TestPortalSepaHook(PortalCommon):
    """The portal works with or without subscription_flex_sepa (no dependency)."""

    def test_mandate_parts_follow_the_optional_addon(self):
        self.authenticate(self.user_portal.login, self.user_portal.login)
        page = self.url_open(self._url(self.sub)).text
        form = self.url_open(self._url(self.sub, "mandate"), allow_redirects=False)
        if "flex.sepa.mandate" in self.env:
            self.assertIn("o_flex_portal_mandate", page)
            self.assertEqual(form.status_code, 200)
        else:
            self.assertNotIn("o_flex_portal_mandate", page)
            self.assertEqual(form.status_code, 404)
            pdf = self.url_open(self._url(self.sub, "mandate/pdf"), allow_redirects=False)
            self.assertEqual(pdf.status_code, 404)
