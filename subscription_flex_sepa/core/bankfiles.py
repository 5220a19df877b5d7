"""Bank files a creditor receives, read into plain data (no Odoo): camt.053 statements,
camt.054 debit/credit notifications (001.02 and 001.08) and pain.002 status reports
(001.03 and 001.10).

The parser is hardened: no DTD, no entity, no network, a size limit, and the document
must validate against the official ISO 20022 schema of its namespace before anything is
read from it. A file that fails any of these raises :class:`BankFileError` and nothing
is returned, so a caller never sees half a file.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from lxml import etree

XSD_DIR = Path(__file__).resolve().parent.parent / "data" / "xsd"
NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
SUPPORTED = (
    "camt.053.001.02",
    "camt.053.001.08",
    "camt.054.001.02",
    "camt.054.001.08",
    "pain.002.001.03",
    "pain.002.001.10",
)
# ISO 20022 bank transaction sub-families of the bank's own charges (External Bank
# Transaction Sub Family codes): charges, fees, commissions (with or without tax).
CHARGE_SUB_FAMILIES = frozenset({"CHRG", "FEES", "COMM", "COME", "COMI", "COMT"})
MAX_FILE_SIZE = 64 * 1024 * 1024  # a camt.053 of 100,000 entries is about 60 MB


class BankFileError(ValueError):
    """A file that cannot be imported; ``code`` tells which rule it broke (the Odoo layer
    words it in the user's language), ``details`` the parser's own message."""

    def __init__(self, code, details=""):
        super().__init__(f"{code}: {details}" if details else code)
        self.code = code
        self.details = details


@dataclass
class Transaction:
    """One ``TxDtls`` of an entry."""

    end_to_end_id: str = None
    pmt_inf_id: str = None
    msg_id: str = None
    mandate_id: str = None
    amount: Decimal = None  # the transaction amount, when the bank states it
    instructed_amount: Decimal = None  # the amount originally debited (returns)
    fee: Decimal = Decimal(0)
    return_reason: str = None
    return_info: str = ""
    debtor_name: str = ""
    debtor_iban: str = ""
    info: str = ""


@dataclass
class Entry:
    """One ``Ntry``: one booking on the account (a batch credit, one debit, a return)."""

    index: int
    amount: Decimal  # positive
    credit: bool  # CRDT (True) or DBIT
    booking_date: date
    value_date: date = None
    status: str = "BOOK"
    reversal: bool = False
    ref: str = None  # AcctSvcrRef: the bank's own reference of the booking
    entry_ref: str = None  # NtryRef
    batch_msg_id: str = None
    batch_pmt_inf_id: str = None
    batch_count: int = None
    fee: Decimal = Decimal(0)  # charges stated on the entry itself
    info: str = ""
    bank_tx_code: tuple = None  # BkTxCd/Domn: (domain, family, sub-family), e.g. ACMT MDOP CHRG
    transactions: list = field(default_factory=list)

    @property
    def is_charge(self):
        """The bank's own charges on the account (its ISO bank transaction code says so:
        sub-family charges, fees or commission), not a payment of anybody's."""
        return bool(self.bank_tx_code) and self.bank_tx_code[2] in CHARGE_SUB_FAMILIES

    @property
    def signed_amount(self):
        return self.amount if self.credit else -self.amount

    @property
    def total_fee(self):
        return self.fee or sum((tx.fee for tx in self.transactions), Decimal(0))

    @property
    def return_reason(self):
        return next((tx.return_reason for tx in self.transactions if tx.return_reason), None)


@dataclass
class Statement:
    """A camt.053 ``Stmt`` or a camt.054 ``Ntfctn``: the entries of one account."""

    identifier: str
    iban: str
    currency: str = None
    opening: Decimal = None
    closing: Decimal = None
    entries: list = field(default_factory=list)


@dataclass
class TransactionStatus:
    end_to_end_id: str
    status: str
    reason: str = None
    amount: Decimal = None
    collection_date: date = None
    mandate_id: str = None


@dataclass
class PaymentInfoStatus:
    pmt_inf_id: str
    status: str = None
    reason: str = None
    transactions: list = field(default_factory=list)


@dataclass
class BankMessage:
    version: str  # e.g. "camt.053.001.08"
    msg_id: str
    created: datetime = None
    statements: list = field(default_factory=list)  # camt
    original_msg_id: str = None  # pain.002
    group_status: str = None
    group_reason: str = None
    payment_infos: list = field(default_factory=list)

    @property
    def kind(self):
        return self.version[:8]


# ------------------------------------------------------------------ reading XML


def _parser():
    # No DTD is loaded and no entity is substituted (billion laughs, XXE); huge_tree stays
    # off so libxml2 keeps its depth and text-size limits.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        collect_ids=False,
    )


@cache
def _schema(version):
    return etree.XMLSchema(etree.parse(str(XSD_DIR / f"{version}.xsd")))


def load(data):
    """The validated document of ``data`` (bytes) and its message version."""
    if not data or not data.strip():
        raise BankFileError("empty")
    if len(data) > MAX_FILE_SIZE:
        raise BankFileError("too_large", str(len(data)))
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise BankFileError("dtd")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        raise BankFileError("not_xml", str(error)) from error
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        # Also caught when the file is in an encoding the byte check above cannot read.
        raise BankFileError("dtd")
    namespace = etree.QName(root).namespace or ""
    version = namespace.removeprefix(NAMESPACE_PREFIX)
    if etree.QName(root).localname != "Document" or version not in SUPPORTED:
        raise BankFileError("unsupported", namespace or etree.QName(root).localname)
    schema = _schema(version)
    if not schema.validate(root):
        error = schema.error_log.last_error
        raise BankFileError("schema", f"line {error.line}: {error.message}")
    return root, version


class _Reader:
    """XPath-free lookups in one namespace: ``find("Ntry/Amt")``."""

    def __init__(self, version):
        self.ns = {"d": NAMESPACE_PREFIX + version}
        self._paths = {}

    def _path(self, path):
        # A file of 10,000 entries asks for the same few dozen paths 300,000 times.
        if path not in self._paths:
            self._paths[path] = "/".join(f"d:{step}" for step in path.split("/"))
        return self._paths[path]

    def find(self, element, path):
        return element.find(self._path(path), self.ns)

    def findall(self, element, path):
        return element.findall(self._path(path), self.ns)

    def text(self, element, path, default=None):
        found = self.find(element, path)
        return found.text.strip() if found is not None and found.text else default

    def amount(self, element, path):
        value = self.text(element, path)
        if value is None:
            return None
        try:
            return Decimal(value)
        except InvalidOperation as error:  # the schema allows no such value; belt and braces
            raise BankFileError("schema", f"amount {value!r}") from error

    def day(self, element, path):
        value = self.text(element, f"{path}/Dt") or self.text(element, f"{path}/DtTm")
        return date.fromisoformat(value[:10]) if value else None


def parse(data):
    """:class:`BankMessage` of a bank file (bytes); raises :class:`BankFileError`."""
    root, version = load(data)
    read = _Reader(version)
    body = root[0]
    created = read.text(body, "GrpHdr/CreDtTm")
    message = BankMessage(
        version=version,
        msg_id=read.text(body, "GrpHdr/MsgId"),
        created=datetime.fromisoformat(created[:19]) if created else None,
    )
    if version.startswith("pain.002"):
        _read_status_report(read, body, message)
    else:
        tag = "Stmt" if version.startswith("camt.053") else "Ntfctn"
        message.statements = [_read_statement(read, stmt) for stmt in read.findall(body, tag)]
    return message


def _read_statement(read, stmt):
    statement = Statement(
        identifier=read.text(stmt, "Id"),
        iban=(read.text(stmt, "Acct/Id/IBAN") or read.text(stmt, "Acct/Id/Othr/Id") or "")
        .replace(" ", "")
        .upper(),
        currency=read.text(stmt, "Acct/Ccy"),
    )
    for balance in read.findall(stmt, "Bal"):
        code = read.text(balance, "Tp/CdOrPrtry/Cd")
        amount = read.amount(balance, "Amt")
        if read.text(balance, "CdtDbtInd") == "DBIT":
            amount = -amount
        if code in ("OPBD", "PRCD") and statement.opening is None:
            statement.opening = amount
        elif code in ("CLBD",):
            statement.closing = amount
    for index, ntry in enumerate(read.findall(stmt, "Ntry")):
        statement.entries.append(_read_entry(read, ntry, index))
    return statement


def _charges(read, element):
    """Charges of an entry or a transaction: ``Chrgs/Amt`` (001.02, repeated) or
    ``Chrgs/Rcrd/Amt`` (001.08), or the total the bank states."""
    total = Decimal(0)
    for charges in read.findall(element, "Chrgs"):
        records = read.findall(charges, "Rcrd") or [charges]
        amounts = [read.amount(record, "Amt") for record in records]
        amounts = [amount for amount in amounts if amount is not None]
        if amounts:
            total += sum(amounts, Decimal(0))
        else:
            total += read.amount(charges, "TtlChrgsAndTaxAmt") or Decimal(0)
    return total


def _read_entry(read, ntry, index):
    status = read.text(ntry, "Sts") or read.text(ntry, "Sts/Cd") or "BOOK"
    entry = Entry(
        index=index,
        amount=read.amount(ntry, "Amt"),
        credit=read.text(ntry, "CdtDbtInd") == "CRDT",
        booking_date=read.day(ntry, "BookgDt") or read.day(ntry, "ValDt"),
        value_date=read.day(ntry, "ValDt"),
        status=status,
        reversal=read.text(ntry, "RvslInd") == "true",
        ref=read.text(ntry, "AcctSvcrRef"),
        entry_ref=read.text(ntry, "NtryRef"),
        fee=_charges(read, ntry),
        info=read.text(ntry, "AddtlNtryInf", ""),
        bank_tx_code=_bank_tx_code(read, ntry),
    )
    for details in read.findall(ntry, "NtryDtls"):
        batch = read.find(details, "Btch")
        if batch is not None:
            entry.batch_msg_id = read.text(batch, "MsgId")
            entry.batch_pmt_inf_id = read.text(batch, "PmtInfId")
            count = read.text(batch, "NbOfTxs")
            entry.batch_count = int(count) if count else None
        for tx in read.findall(details, "TxDtls"):
            entry.transactions.append(_read_transaction(read, tx))
    return entry


def _bank_tx_code(read, ntry):
    domain = read.text(ntry, "BkTxCd/Domn/Cd")
    if not domain:
        return None
    return (
        domain,
        read.text(ntry, "BkTxCd/Domn/Fmly/Cd"),
        read.text(ntry, "BkTxCd/Domn/Fmly/SubFmlyCd"),
    )


def _read_transaction(read, tx):
    amount = read.amount(tx, "Amt")
    if amount is None:
        amount = read.amount(tx, "AmtDtls/TxAmt/Amt")
    info = " ".join(
        line.text.strip() for line in read.findall(tx, "RmtInf/Ustrd") if line.text
    ) or read.text(tx, "AddtlTxInf", "")
    return Transaction(
        end_to_end_id=_reference(read.text(tx, "Refs/EndToEndId")),
        pmt_inf_id=read.text(tx, "Refs/PmtInfId"),
        msg_id=read.text(tx, "Refs/MsgId"),
        mandate_id=read.text(tx, "Refs/MndtId"),
        amount=amount,
        instructed_amount=read.amount(tx, "AmtDtls/InstdAmt/Amt"),
        fee=_charges(read, tx),
        return_reason=read.text(tx, "RtrInf/Rsn/Cd") or read.text(tx, "RtrInf/Rsn/Prtry"),
        return_info=" ".join(
            line.text.strip() for line in read.findall(tx, "RtrInf/AddtlInf") if line.text
        ),
        debtor_name=read.text(tx, "RltdPties/Dbtr/Nm")
        or read.text(tx, "RltdPties/Dbtr/Pty/Nm", ""),
        debtor_iban=read.text(tx, "RltdPties/DbtrAcct/Id/IBAN", ""),
        info=info,
    )


def _reference(value):
    # "NOTPROVIDED" is how SEPA says there is no end-to-end reference.
    return None if not value or value == "NOTPROVIDED" else value


def _read_status_report(read, body, message):
    group = read.find(body, "OrgnlGrpInfAndSts")
    message.original_msg_id = read.text(group, "OrgnlMsgId")
    message.group_status = read.text(group, "GrpSts")
    message.group_reason = read.text(group, "StsRsnInf/Rsn/Cd") or read.text(
        group, "StsRsnInf/Rsn/Prtry"
    )
    for block in read.findall(body, "OrgnlPmtInfAndSts"):
        info = PaymentInfoStatus(
            pmt_inf_id=read.text(block, "OrgnlPmtInfId"),
            status=read.text(block, "PmtInfSts"),
            reason=read.text(block, "StsRsnInf/Rsn/Cd") or read.text(block, "StsRsnInf/Rsn/Prtry"),
        )
        for tx in read.findall(block, "TxInfAndSts"):
            info.transactions.append(
                TransactionStatus(
                    end_to_end_id=_reference(read.text(tx, "OrgnlEndToEndId")),
                    status=read.text(tx, "TxSts"),
                    reason=read.text(tx, "StsRsnInf/Rsn/Cd")
                    or read.text(tx, "StsRsnInf/Rsn/Prtry"),
                    amount=read.amount(tx, "OrgnlTxRef/Amt/InstdAmt"),
                    collection_date=_date_or_none(read.text(tx, "OrgnlTxRef/ReqdColltnDt")),
                    mandate_id=read.text(tx, "OrgnlTxRef/MndtRltdInf/MndtId"),
                )
            )
        message.payment_infos.append(info)


def _date_or_none(value):
    return date.fromisoformat(value[:10]) if value else None


# ------------------------------------------------------------------ reason codes

# What a creditor usually does per reason code (EPC guidance, shared/SEPA.md); the addon
# installs these as editable policies.
REASON_CODES = {
    "AC01": ("Incorrect account number", "suspend"),
    "AC04": ("Account closed", "suspend"),
    "AC06": ("Account blocked", "suspend"),
    "AC13": ("Debtor account is a consumer account (B2B)", "suspend"),
    "AG01": ("Transaction forbidden on this account", "suspend"),
    "AG02": ("Invalid bank operation code", "manual"),
    "AM04": ("Insufficient funds", "retry"),
    "AM05": ("Duplicate collection", "manual"),
    "BE05": ("Unrecognised creditor", "manual"),
    "CNOR": ("Creditor bank is not registered", "manual"),
    "DNOR": ("Debtor bank is not registered", "manual"),
    "FF01": ("Invalid file format", "manual"),
    "MD01": ("No valid mandate", "suspend"),
    "MD02": ("Mandate data missing or incorrect", "suspend"),
    "MD06": ("Refund requested by the debtor", "dispute"),
    "MD07": ("Debtor deceased", "close"),
    "MS02": ("Refused by the debtor, no reason given", "manual"),
    "MS03": ("Reason not specified by the bank", "retry"),
    "RC01": ("Bank identifier (BIC) incorrect", "manual"),
    "RR01": ("Regulatory reason: debtor account or identification missing", "manual"),
    "RR02": ("Regulatory reason: debtor name or address missing", "manual"),
    "RR03": ("Regulatory reason: creditor name or address missing", "manual"),
    "RR04": ("Regulatory reason", "manual"),
    "SL01": ("Specific service offered by the debtor bank", "manual"),
}
