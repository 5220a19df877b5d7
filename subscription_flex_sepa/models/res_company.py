from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..core import sepa


class ResCompany(models.Model):
    _inherit = "res.company"

    flex_sepa_creditor_id = fields.Char(
        string="SEPA Creditor Identifier", help="e.g. DE98ZZZ09999999999"
    )
    flex_sepa_scheme = fields.Selection(
        [("CORE", "Core"), ("B2B", "Business to business")],
        string="Default SEPA Scheme",
        default="CORE",
        required=True,
    )
    flex_sepa_prenotification_days = fields.Integer(
        string="Pre-notification Days",
        default=14,
        help="Debtors are told at least this many calendar days before a collection.",
    )
    flex_sepa_pain_version = fields.Selection(
        [("pain.008.001.08", "pain.008.001.08 (2019)"), ("pain.008.001.02", "pain.008.001.02")],
        string="pain.008 Version",
        default="pain.008.001.08",
        required=True,
    )
    flex_sepa_batch_booking = fields.Boolean(
        string="Batch Booking",
        default=True,
        help="The bank books one credit per payment information block (date and sequence "
        "type) instead of one per debit.",
    )
    flex_sepa_journal_id = fields.Many2one(
        "account.journal",
        string="Direct Debit Journal",
        domain="[('type', '=', 'bank'), ('company_id', '=', id)]",
        help="Bank journal the collections are paid into (its account is the creditor IBAN).",
    )
    flex_sepa_first_sequence = fields.Selection(
        [("frst", "FRST, then RCUR"), ("rcur", "RCUR from the first debit")],
        string="First Debit",
        default="frst",
        required=True,
    )

    flex_sepa_fee_account_id = fields.Many2one(
        "account.account",
        string="Return Fees Account",
        domain="[('account_type', 'in', ('expense', 'expense_direct_cost'))]",
        help="Expense account of the fees banks charge on returned direct debits.",
    )
    flex_sepa_charges_account_id = fields.Many2one(
        "account.account",
        string="Bank Charges Account",
        domain="[('account_type', 'in', ('expense', 'expense_direct_cost'))]",
        help="Expense account of the charges the bank books on the account itself (statement "
        "entries with a charges bank transaction code, e.g. ACMT/MDOP/CHRG). Empty: the "
        "return fees account.",
    )
    flex_sepa_reinvoice_fee = fields.Boolean(
        string="Re-invoice Return Fees",
        help="Each returned debit's fee becomes an invoice of the customer's subscription.",
    )
    flex_sepa_fee_product_id = fields.Many2one(
        "product.product", string="Return Fee Product", help="Product of re-invoiced fees."
    )
    flex_sepa_return_user_id = fields.Many2one(
        "res.users",
        string="Returns Handled By",
        help="Accountant who gets the activities of returned debits (default: the user "
        "who imports the bank file).",
    )

    _sql_constraints = [
        (
            "flex_sepa_prenotification_days_positive",
            "CHECK(flex_sepa_prenotification_days >= 0)",
            "Pre-notification days cannot be negative.",
        ),
    ]

    def _flex_sepa_charges_account(self):
        """Where the bank's charges on the account are booked: the bank charges account,
        else the return fees account, else the chart's *Bank Fees* account."""
        self.ensure_one()
        return (
            self.flex_sepa_charges_account_id
            or self.flex_sepa_fee_account_id
            or self.env.ref(f"account.{self.id}_expense_finance", raise_if_not_found=False)
            or self.env["account.account"]
        )

    @api.constrains("flex_sepa_creditor_id")
    def _check_flex_sepa_creditor_id(self):
        for company in self.filtered("flex_sepa_creditor_id"):
            if not sepa.is_valid_creditor_identifier(company.flex_sepa_creditor_id):
                raise ValidationError(
                    self.env._(
                        "%(ci)s is not a valid SEPA creditor identifier (company %(company)s).",
                        ci=company.flex_sepa_creditor_id,
                        company=company.name,
                    )
                )

    @api.onchange("flex_sepa_creditor_id")
    def _onchange_flex_sepa_creditor_id(self):
        if self.flex_sepa_creditor_id:
            self.flex_sepa_creditor_id = sepa.normalize_creditor_identifier(
                self.flex_sepa_creditor_id
            )
