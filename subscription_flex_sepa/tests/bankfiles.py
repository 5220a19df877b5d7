"""Builders of the ISO 20022 files a bank sends to a SEPA direct-debit creditor, for tests.

camt.053 statements and camt.054 notifications (001.02 and 001.08) and pain.002 status
reports (001.03 and 001.10), written from the official XSDs in ``data/xsd`` and nothing
else: this module imports neither odoo nor the addon, so the addon's parser can be checked
against an independent implementation of the formats.

Amounts are ``Decimal``, dates ``date``; every builder returns UTF-8 bytes with an XML
declaration. Entries of camt files are dicts with a ``kind``:

- ``batch``: one CRDT entry for a whole pain.008 payment information block (``NtryDtls/Btch``),
  optionally with one ``TxDtls`` per collected debit (``details``);
- ``credit``: one CRDT entry per collected debit (a single ``TxDtls``, no ``Btch``);
- ``return``: a returned debit, booked DBIT for ``amount + fee`` (``RtrInf``, ``Chrgs``);
- ``other``: an unrelated booking (a customer's wire transfer, a bank charge).

Optional keys for every kind: ``ref`` (AcctSvcrRef, None for none), ``prtry``
(BkTxCd/Prtry/Cd, e.g. "NDDT+105"), ``bank_tx_code`` (a (domain, family, sub-family)
tuple replacing the default); ``info`` on batch/credit entries becomes AddtlNtryInf.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from lxml import etree

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:"
CREATED = datetime(2027, 3, 10, 8, 0)

SDD_COLLECTION = ("PMNT", "IDDT", "ESDD")  # SEPA core direct debit, collected
SDD_RETURN = ("PMNT", "IDDT", "UPDD")  # reversal of a direct debit (return/refund)
OTHER_CODES = {
    "CRDT": ("PMNT", "RCDT", "ESCT"),  # received SEPA credit transfer
    "DBIT": ("ACMT", "MDOP", "CHRG"),  # bank charges
}


@dataclass(frozen=True)
class _Version:
    """What the 2009 (camt .02 / pain .03) and 2019 (camt .08 / pain .10) schemas do differently."""

    bic: str  # FinInstnId/BIC vs FinInstnId/BICFI
    status_code: bool  # Ntry/Sts is a code (BOOK) vs a choice (Sts/Cd BOOK)
    tx_amount: bool  # TxDtls/Amt and TxDtls/CdtDbtInd exist (.08 only)
    charge_record: bool  # TxDtls/Chrgs/Amt vs TxDtls/Chrgs/Rcrd/Amt
    party_choice: bool  # Dbtr/Nm vs Dbtr/Pty/Nm (Party40Choice)


_V2009 = _Version(
    bic="BIC", status_code=False, tx_amount=False, charge_record=False, party_choice=False
)
_V2019 = _Version(
    bic="BICFI", status_code=True, tx_amount=True, charge_record=True, party_choice=True
)
VERSIONS = {
    "camt.053.001.02": _V2009,
    "camt.053.001.08": _V2019,
    "camt.054.001.02": _V2009,
    "camt.054.001.08": _V2019,
    "pain.002.001.03": _V2009,
    "pain.002.001.10": _V2019,
}


# ---------------------------------------------------------------- XML helpers


def _sub(parent, path, text=None, **attrib):
    """Append ``path`` ("A/B/C": one new element per step) under ``parent``, in its namespace;
    ``text`` and ``attrib`` go on the last element, which is returned."""
    namespace = etree.QName(parent).namespace
    *steps, last = path.split("/")
    for step in steps:
        parent = etree.SubElement(parent, f"{{{namespace}}}{step}")
    element = etree.SubElement(parent, f"{{{namespace}}}{last}", attrib)
    if text is not None:
        element.text = text
    return element


def _amount(parent, path, amount, currency):
    return _sub(parent, path, f"{amount:.2f}", Ccy=currency)


def _datetime(value):
    return value.isoformat(timespec="seconds")


def _document(version, message, root_tag):
    """The ``Document`` of ``version`` (which must be a version of ``message``) and its root."""
    if version not in VERSIONS or not version.startswith(message):
        known = ", ".join(v for v in VERSIONS if v.startswith(message))
        raise ValueError(f"unknown version {version!r} (known: {known})")
    namespace = NAMESPACE + version
    document = etree.Element(f"{{{namespace}}}Document", nsmap={None: namespace})
    return _sub(document, root_tag), VERSIONS[version]


def _serialize(root):
    body = etree.tostring(root.getroottree(), encoding="UTF-8", pretty_print=True)
    if body.startswith(b"<?xml"):  # lxml's own declaration uses single quotes; banks don't
        body = body.split(b"\n", 1)[1]
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _group_header(root, msg_id, created, paginated=True):
    header = _sub(root, "GrpHdr")
    _sub(header, "MsgId", msg_id)
    _sub(header, "CreDtTm", _datetime(created))
    if paginated:  # camt only
        pagination = _sub(header, "MsgPgntn")
        _sub(pagination, "PgNb", "1")
        _sub(pagination, "LastPgInd", "true")
    return header


def _party_name(parent, tag, name, v):
    _sub(parent, f"{tag}/Pty/Nm" if v.party_choice else f"{tag}/Nm", name)


def _iban(parent, tag, iban):
    _sub(parent, f"{tag}/Id/IBAN", iban)


def _status_reason(parent, reason=None, info=None):
    if reason or info:
        reason_info = _sub(parent, "StsRsnInf")
        if reason:
            _sub(reason_info, "Rsn/Cd", reason)
        if info:
            _sub(reason_info, "AddtlInf", info)


# ---------------------------------------------------------------- camt entries


def _booking(entry):
    """(booked amount, CRDT/DBIT, (domain, family, sub-family)) of an entry dict."""
    kind = entry["kind"]
    if kind in ("batch", "credit"):
        booked = (entry["amount"], "CRDT", SDD_COLLECTION)
    elif kind == "return":
        booked = (entry["amount"] + entry.get("fee", Decimal(0)), "DBIT", SDD_RETURN)
    elif kind == "other":
        booked = (entry["amount"], entry["sign"], OTHER_CODES[entry["sign"]])
    else:
        raise ValueError(f"unknown entry kind {kind!r}")
    return booked[:2] + (entry.get("bank_tx_code") or booked[2],)


def _tx_details(details, v, currency, amount, sign, refs, **extra):
    """One ``TxDtls``. ``refs``: {tag: value} of Refs children (None values skipped).
    ``extra``: instructed, fee, debtor_name, debtor_iban, remittance, return_reason, return_info.
    """
    tx = _sub(details, "TxDtls")
    refs = {tag: value for tag, value in refs.items() if value}
    if refs:
        references = _sub(tx, "Refs")
        for tag in ("MsgId", "PmtInfId", "EndToEndId", "MndtId"):  # schema order
            if tag in refs:
                _sub(references, tag, refs[tag])
    if v.tx_amount:
        _amount(tx, "Amt", amount, currency)
        _sub(tx, "CdtDbtInd", sign)
    amount_details = _sub(tx, "AmtDtls")
    if extra.get("instructed") is not None:
        _amount(amount_details, "InstdAmt/Amt", extra["instructed"], currency)
    _amount(amount_details, "TxAmt/Amt", amount, currency)
    if extra.get("fee"):
        charges = _sub(tx, "Chrgs/Rcrd" if v.charge_record else "Chrgs")
        _amount(charges, "Amt", extra["fee"], currency)
        _sub(charges, "CdtDbtInd", "DBIT")
    if extra.get("debtor_name") or extra.get("debtor_iban"):
        parties = _sub(tx, "RltdPties")
        if extra.get("debtor_name"):
            _party_name(parties, "Dbtr", extra["debtor_name"], v)
        if extra.get("debtor_iban"):
            _iban(parties, "DbtrAcct", extra["debtor_iban"])
    if extra.get("remittance"):
        _sub(tx, "RmtInf/Ustrd", extra["remittance"])
    if extra.get("return_reason") or extra.get("return_info"):
        return_info = _sub(tx, "RtrInf")
        if extra.get("return_reason"):
            _sub(return_info, "Rsn/Cd", extra["return_reason"])
        if extra.get("return_info"):
            _sub(return_info, "AddtlInf", extra["return_info"])
    return tx


def _refs(entry, **overrides):
    refs = {
        "MsgId": entry.get("msg_id"),
        "PmtInfId": entry.get("pmt_inf_id"),
        "EndToEndId": entry.get("end_to_end_id"),
        "MndtId": entry.get("mandate_id"),
    }
    return {**refs, **overrides}


def _party(entry):
    return {"debtor_name": entry.get("debtor_name"), "debtor_iban": entry.get("debtor_iban")}


def _entry_details(details, v, currency, entry, amount, sign):
    kind = entry["kind"]
    if kind == "batch":
        batch = _sub(details, "Btch")
        _sub(batch, "MsgId", entry["msg_id"])
        _sub(batch, "PmtInfId", entry["pmt_inf_id"])
        _sub(batch, "NbOfTxs", str(entry["count"]))
        _amount(batch, "TtlAmt", amount, currency)
        _sub(batch, "CdtDbtInd", sign)
        for detail in entry.get("details") or ():
            refs = _refs(detail, MsgId=entry["msg_id"], PmtInfId=entry["pmt_inf_id"])
            _tx_details(details, v, currency, detail["amount"], sign, refs, **_party(detail))
    elif kind == "credit":
        _tx_details(details, v, currency, amount, sign, _refs(entry), **_party(entry))
    elif kind == "return":
        _tx_details(
            details,
            v,
            currency,
            amount,
            sign,
            _refs(entry),
            instructed=entry["amount"],
            fee=entry.get("fee"),
            return_reason=entry.get("reason"),
            return_info=entry.get("info"),
            **_party(entry),
        )
    else:  # other
        refs = {"EndToEndId": entry.get("end_to_end_id")}
        _tx_details(details, v, currency, amount, sign, refs, remittance=entry.get("info"))


def _entry(parent, v, currency, entry):
    amount, sign, (domain, family, sub_family) = _booking(entry)
    ntry = _sub(parent, "Ntry")
    _amount(ntry, "Amt", amount, currency)
    _sub(ntry, "CdtDbtInd", sign)
    if entry["kind"] == "return" and entry.get("reversal", True):
        _sub(ntry, "RvslInd", "true")
    _sub(ntry, "Sts/Cd" if v.status_code else "Sts", "BOOK")
    _sub(ntry, "BookgDt/Dt", entry["date"].isoformat())
    _sub(ntry, "ValDt/Dt", entry["date"].isoformat())
    if entry.get("ref"):
        _sub(ntry, "AcctSvcrRef", entry["ref"])
    code = _sub(ntry, "BkTxCd")
    code_domain = _sub(code, "Domn")
    _sub(code_domain, "Cd", domain)
    code_family = _sub(code_domain, "Fmly")
    _sub(code_family, "Cd", family)
    _sub(code_family, "SubFmlyCd", sub_family)
    if entry.get("prtry"):
        _sub(code, "Prtry/Cd", entry["prtry"])
    _entry_details(_sub(ntry, "NtryDtls"), v, currency, entry, amount, sign)
    info = entry.get("info") if entry["kind"] != "return" else None  # a return's goes to RtrInf
    if info:
        _sub(ntry, "AddtlNtryInf", info)
    return ntry


def _report(root, tag, v, report_id, created, iban, currency, bic):
    report = _sub(root, tag)
    _sub(report, "Id", report_id)
    _sub(report, "CreDtTm", _datetime(created))
    account = _sub(report, "Acct")
    _sub(account, "Id/IBAN", iban)
    _sub(account, "Ccy", currency)
    if bic:
        _sub(account, f"Svcr/FinInstnId/{v.bic}", bic)
    return report


def _balance(statement, code, amount, currency, day):
    balance = _sub(statement, "Bal")
    _sub(balance, "Tp/CdOrPrtry/Cd", code)
    _amount(balance, "Amt", abs(amount), currency)
    _sub(balance, "CdtDbtInd", "DBIT" if amount < 0 else "CRDT")
    _sub(balance, "Dt/Dt", day.isoformat())


# ---------------------------------------------------------------- builders


def camt053(
    version,
    iban,
    entries,
    *,
    msg_id="STMT-1",
    stmt_id="STMT-1-1",
    created=CREATED,
    opening=Decimal("0.00"),
    currency="EUR",
    bic="COBADEFFXXX",
):
    """A camt.053 statement: one ``Stmt`` of ``iban`` with OPBD ``opening``, CLBD
    ``opening`` + credits - debits (both dated on the last entry's date, else ``created``)
    and one ``Ntry`` per entry, in order."""
    root, v = _document(version, "camt.053", "BkToCstmrStmt")
    _group_header(root, msg_id, created)
    statement = _report(root, "Stmt", v, stmt_id, created, iban, currency, bic)
    closing = opening
    for entry in entries:
        amount, sign, _code = _booking(entry)
        closing += amount if sign == "CRDT" else -amount
    day = entries[-1]["date"] if entries else created.date()
    _balance(statement, "OPBD", opening, currency, day)
    _balance(statement, "CLBD", closing, currency, day)
    for entry in entries:
        _entry(statement, v, currency, entry)
    return _serialize(root)


def camt054(
    version,
    iban,
    entries,
    *,
    msg_id="NTF-1",
    ntfctn_id="NTF-1-1",
    created=CREATED,
    currency="EUR",
    bic="COBADEFFXXX",
):
    """A camt.054 debit/credit notification: one ``Ntfctn`` of ``iban``, one ``Ntry`` per
    entry (the same entries as :func:`camt053`; no balances)."""
    root, v = _document(version, "camt.054", "BkToCstmrDbtCdtNtfctn")
    _group_header(root, msg_id, created)
    notification = _report(root, "Ntfctn", v, ntfctn_id, created, iban, currency, bic)
    for entry in entries:
        _entry(notification, v, currency, entry)
    return _serialize(root)


def pain002(
    version,
    original_msg_id,
    transactions,
    *,
    msg_id="STS-1",
    created=CREATED,
    group_status=None,
    group_reason=None,
    original_msg_name="pain.008.001.08",
    payment_infos=None,
):
    """A pain.002 status report on the pain.008 ``original_msg_id``.

    ``payment_infos``: [{"pmt_inf_id", "status", "reason", "info"(opt)}], a status of a
    whole payment information block. ``transactions``: [{"pmt_inf_id", "end_to_end_id",
    "status" (default RJCT), "reason", "info"(opt), "amount", "collection_date",
    "mandate_id", "debtor_name", "debtor_iban", "tx_id" (StsId), "instr_id"
    (OrgnlInstrId), "currency" (default EUR)}]. One ``OrgnlPmtInfAndSts`` per pmt_inf_id,
    in order of first appearance (payment_infos first), holding its status and its
    transactions."""
    root, v = _document(version, "pain.002", "CstmrPmtStsRpt")
    _group_header(root, msg_id, created, paginated=False)
    group = _sub(root, "OrgnlGrpInfAndSts")
    _sub(group, "OrgnlMsgId", original_msg_id)
    _sub(group, "OrgnlMsgNmId", original_msg_name)
    if group_status:
        _sub(group, "GrpSts", group_status)
    _status_reason(group, group_reason)

    blocks = {}
    for info in payment_infos or ():
        blocks.setdefault(info["pmt_inf_id"], {"txs": []})["info"] = info
    for tx in transactions:
        blocks.setdefault(tx["pmt_inf_id"], {"txs": []})["txs"].append(tx)
    number = 0
    for pmt_inf_id, block in blocks.items():
        payment = _sub(root, "OrgnlPmtInfAndSts")
        _sub(payment, "OrgnlPmtInfId", pmt_inf_id)
        if "info" in block:
            _sub(payment, "PmtInfSts", block["info"].get("status", "RJCT"))
            _status_reason(payment, block["info"].get("reason"), block["info"].get("info"))
        for tx in block["txs"]:
            number += 1
            _transaction_status(payment, v, tx, tx.get("tx_id") or f"{msg_id}-{number}")
    return _serialize(root)


def _transaction_status(payment, v, tx, status_id):
    status = _sub(payment, "TxInfAndSts")
    _sub(status, "StsId", status_id)
    if tx.get("instr_id"):
        _sub(status, "OrgnlInstrId", tx["instr_id"])
    _sub(status, "OrgnlEndToEndId", tx["end_to_end_id"])
    _sub(status, "TxSts", tx.get("status", "RJCT"))
    _status_reason(status, tx.get("reason"), tx.get("info"))
    ref = _sub(status, "OrgnlTxRef")  # all its children are optional: an empty one is valid
    if tx.get("amount") is not None:
        _amount(ref, "Amt/InstdAmt", tx["amount"], tx.get("currency", "EUR"))
    if tx.get("collection_date"):
        _sub(ref, "ReqdColltnDt", tx["collection_date"].isoformat())
    if tx.get("mandate_id"):
        _sub(ref, "MndtRltdInf/MndtId", tx["mandate_id"])
    if tx.get("debtor_name"):
        _party_name(ref, "Dbtr", tx["debtor_name"], v)
    if tx.get("debtor_iban"):
        _iban(ref, "DbtrAcct", tx["debtor_iban"])
    return status
