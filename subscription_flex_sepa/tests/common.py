from datetime import date

from odoo.addons.subscription_flex.tests.common import FlexCommon

CREDITOR_IBAN = "DE89370400440532013000"
DEBTOR_IBANS = {
    "de": "DE02120300000000202051",
    "fr": "FR1420041010050500013M02606",
    "it": "IT60X0542811101000000123456",
    "nl": "NL91ABNA0417164300",
    "ch": "CH9300762011623852957",
    "at": "AT611904300234573201",
}


class SepaCommon(FlexCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.eur = cls.setup_other_currency("EUR", rates=[("2000-01-01", 1.0)])
        bank = cls.env["res.bank"].create({"name": "Commerzbank", "bic": "COBADEFFXXX"})
        company_account = cls.env["res.partner.bank"].create(
            {
                "acc_number": CREDITOR_IBAN,
                "partner_id": cls.company.partner_id.id,
                "bank_id": bank.id,
                "company_id": cls.company.id,
            }
        )
        cls.sdd_journal = cls.env["account.journal"].create(
            {
                "name": "SEPA collections",
                "type": "bank",
                "code": "SDD",
                "company_id": cls.company.id,
                "bank_account_id": company_account.id,
            }
        )
        cls.company.write(
            {
                "flex_sepa_creditor_id": "DE98ZZZ09999999999",
                "flex_sepa_journal_id": cls.sdd_journal.id,
                "flex_sepa_prenotification_days": 5,
            }
        )
        cls.plan_sepa = cls._create_plan(name="Monthly, SEPA")

    @classmethod
    def _debtor(cls, name, iban_key, **vals):
        partner = cls.env["res.partner"].create({"name": name, **vals})
        account = cls.env["res.partner.bank"].create(
            {"acc_number": DEBTOR_IBANS[iban_key], "partner_id": partner.id}
        )
        return partner, account

    @classmethod
    def _mandate(cls, partner, account, validate=True, **vals):
        mandate = cls.env["flex.sepa.mandate"].create(
            {
                "partner_id": partner.id,
                "partner_bank_id": account.id,
                "signature_date": date(2026, 12, 1),
                **vals,
            }
        )
        if validate:
            mandate.action_validate()
        return mandate

    @classmethod
    def _sepa_subscription(cls, partner, price=100.0, currency=None, start=date(2027, 3, 1)):
        sub = cls._create_subscription(
            plan=cls.plan_sepa,
            start=start,
            partner=partner,
            lines=[(cls.product_seat, 1, price, 0.0)],
            currency_id=(currency or cls.eur).id,
            payment_method="sepa",
        )
        return sub

    def _batch(self, due_by, version="pain.008.001.08"):
        self.company.flex_sepa_pain_version = version
        batch = self.env["flex.sepa.batch"].create({"due_by": due_by})
        batch.action_collect()
        return batch
