from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..core import sepa

MANDATE_VALIDITY_MONTHS = 36


class FlexSepaMandate(models.Model):
    _name = "flex.sepa.mandate"
    _description = "SEPA Direct Debit Mandate"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "signature_date desc, id desc"
    _check_company_auto = True
    _rec_name = "reference"

    reference = fields.Char(
        string="Mandate Reference",
        required=True,
        copy=False,
        tracking=True,
        default=lambda self: self._default_reference(),
        help="Unique mandate reference (UMR): at most 35 characters of A-Z a-z 0-9 and "
        "+ ? / - : ( ) . , ' and space. Generated; editable for imported mandates.",
    )
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    partner_id = fields.Many2one(
        "res.partner", string="Debtor", required=True, tracking=True, index=True
    )
    partner_bank_id = fields.Many2one(
        "res.partner.bank",
        string="Debtor Account",
        required=True,
        tracking=True,
        domain="[('partner_id', 'child_of', partner_id)]",
    )
    iban = fields.Char(related="partner_bank_id.acc_number", string="IBAN")
    bic = fields.Char(related="partner_bank_id.bank_bic", string="BIC")
    signature_date = fields.Date(tracking=True)
    scheme = fields.Selection(
        [("CORE", "Core"), ("B2B", "Business to business")],
        required=True,
        default=lambda self: self.env.company.flex_sepa_scheme or "CORE",
        tracking=True,
    )
    recurrence = fields.Selection(
        [("recurrent", "Recurrent"), ("oneoff", "One-off")],
        required=True,
        default="recurrent",
        tracking=True,
    )
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("valid", "Valid"),
            ("suspended", "Suspended"),
            ("revoked", "Revoked"),
            ("expired", "Expired"),
            ("closed", "Closed"),
        ],
        default="draft",
        required=True,
        tracking=True,
        copy=False,
        index=True,
    )
    first_debit_done = fields.Boolean(
        copy=False, tracking=True, help="A first (FRST) debit was collected."
    )
    next_sequence_type = fields.Selection(
        [(code, code) for code in sepa.SEQUENCE_TYPES], compute="_compute_next_sequence_type"
    )
    last_debit_date = fields.Date(copy=False, readonly=True, tracking=True)
    expiry_date = fields.Date(compute="_compute_expiry_date", store=True)
    amended_iban = fields.Char(
        string="Original IBAN",
        copy=False,
        readonly=True,
        help="IBAN of the last collection, when the account changed since: reported as an "
        "amendment (SMNDA) in the next collection.",
    )
    signed_document = fields.Binary(attachment=True, copy=False)
    signed_document_name = fields.Char(copy=False)

    _sql_constraints = [
        (
            "reference_company_unique",
            "UNIQUE(reference, company_id)",
            "A mandate reference is unique per creditor.",
        ),
    ]

    @api.model
    def _default_reference(self):
        return self.env["ir.sequence"].next_by_code("flex.sepa.mandate") or "/"

    @api.depends("recurrence", "first_debit_done", "company_id.flex_sepa_first_sequence")
    def _compute_next_sequence_type(self):
        for mandate in self:
            mandate.next_sequence_type = sepa.sequence_type(
                mandate.recurrence == "recurrent",
                mandate.first_debit_done,
                mandate.company_id.flex_sepa_first_sequence,
            )

    @api.depends("last_debit_date", "signature_date")
    def _compute_expiry_date(self):
        for mandate in self:
            start = mandate.last_debit_date or mandate.signature_date
            mandate.expiry_date = start and start + relativedelta(months=MANDATE_VALIDITY_MONTHS)

    @api.constrains("reference")
    def _check_reference(self):
        for mandate in self:
            if not sepa.is_valid_mandate_reference(mandate.reference):
                raise ValidationError(
                    self.env._(
                        "Mandate reference %(ref)s: at most 35 characters among letters, digits, "
                        "spaces and + ? / - : ( ) . , '",
                        ref=mandate.reference,
                    )
                )

    @api.constrains("partner_bank_id")
    def _check_iban(self):
        for mandate in self:
            if mandate.partner_bank_id.acc_type != "iban":
                raise ValidationError(
                    self.env._(
                        "Mandate %(ref)s: the debtor account %(account)s is not a valid IBAN.",
                        ref=mandate.reference,
                        account=mandate.partner_bank_id.acc_number,
                    )
                )

    def write(self, vals):
        if "partner_bank_id" in vals:
            # The debtor changed account: the next collection reports the amendment
            # (original IBAN), once a debit was made with the previous one.
            for mandate in self.filtered(lambda m: m.last_debit_date and not m.amended_iban):
                if mandate.partner_bank_id.id != vals["partner_bank_id"]:
                    mandate.amended_iban = mandate.partner_bank_id.sanitized_acc_number
        return super().write(vals)

    def _masked_iban(self):
        """IBAN as shown to the debtor: country, check digits and the last 4 characters."""
        self.ensure_one()
        iban = self.partner_bank_id.sanitized_acc_number or ""
        return f"{iban[:4]} **** {iban[-4:]}" if len(iban) > 8 else iban

    def action_validate(self):
        for mandate in self:
            if mandate.state not in ("draft", "suspended"):
                raise UserError(self.env._("Only draft or suspended mandates can be validated."))
            if not mandate.signature_date:
                raise UserError(
                    self.env._("Mandate %(ref)s needs its signature date.", ref=mandate.reference)
                )
        self.write({"state": "valid"})
        # A debit returned for want of a mandate (MD01, AC04...) waits for a new one.
        held = self.env["account.move"].search(
            [
                ("flex_sepa_hold", "=", "mandate"),
                ("commercial_partner_id", "in", self.partner_id.commercial_partner_id.ids),
                ("payment_state", "in", ("not_paid", "partial")),
            ]
        )
        held.write({"flex_sepa_hold": False})
        return True

    def action_suspend(self):
        self.filtered(lambda m: m.state == "valid").write({"state": "suspended"})
        return True

    def action_revoke(self):
        self.filtered(lambda m: m.state in ("draft", "valid", "suspended")).write(
            {"state": "revoked"}
        )
        return True

    def action_close(self):
        self.filtered(lambda m: m.state != "closed").write({"state": "closed"})
        return True

    def _register_debits(self, day):
        """After a collection: FRST done, RCUR from now on; one-off mandates close; the
        amendment was reported."""
        for mandate in self:
            vals = {"last_debit_date": day, "first_debit_done": True, "amended_iban": False}
            if mandate.recurrence == "oneoff":
                vals["state"] = "closed"
            mandate.write(vals)

    @api.model
    def _cron_expire(self):
        """Mandates unused for 36 months expire and must not be used again."""
        today = fields.Date.context_today(self)
        expired = self.search([("state", "=", "valid"), ("expiry_date", "<=", today)])
        expired.write({"state": "expired"})
        for mandate in expired:
            mandate.message_post(
                body=self.env._("Expired: no collection for %(months)s months.", months=36)
            )
        return expired
