"""The portal answers in the customer's language (fr and it shipped with the addon)."""

from odoo.tests import tagged

from .common import PortalCommon


@tagged("post_install", "-at_install")
class TestPortalI18n(PortalCommon):
    def _as(self, lang):
        self.env["res.lang"]._activate_lang(lang)
        self.env["ir.module.module"].search(
            [("name", "in", ("subscription_flex", "subscription_flex_portal"))]
        )._update_translations([lang])
        self.user_portal.lang = lang
        self.authenticate(self.user_portal.login, self.user_portal.login)

    def test_refusal_in_french(self):
        self._as("fr_FR")
        line = self._seat_line(self.sub)
        response = self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=42)
        self.assertEqual(response.status_code, 400)
        self.assertIn("doit être comprise entre 1 et 10", response.text)
        self.assertIn("Modifier une quantité", response.text)
        self.assertFalse(self._changes(self.sub))

    def test_pages_in_italian(self):
        self._as("it_IT")
        html = self.url_open(self._url(self.sub)).text
        self.assertIn("Prossima fattura", html)
        self.assertIn("Disdici l'abbonamento", html)
        listing = self.url_open("/my/subscriptions").text
        self.assertIn("Abbonamento n.", listing)
        response = self._post(self.sub, "cancel", step="preview", when="period_end")
        self.assertEqual(response.status_code, 400)
        self.assertIn("Dicci perché disdici.", response.text)
