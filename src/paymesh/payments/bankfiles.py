"""ISO 20022 bank files, as pure functions: settlement's payment file out, statements in.

Settlement pays merchants by sending the bank a *payment file*, an ISO 20022
pain.001.001.09 CustomerCreditTransferInitiation (:func:`pain001`); reconciliation
matches the bank's *statement*, a camt.053 BankToCustomerStatement
(:func:`read_camt053`) or a CSV export (:func:`read_statement_csv`), to the ledger
by each entry's EndToEndId, which is the transfer's ``end_to_end_id`` in the
payment file. :func:`execute_pain001` is the simulated bank in between: it reads a
payment file and answers the statement of the debtor's account, returns included.

Amounts are integers of minor units with an ISO 4217 code, as everywhere in
paymesh; in the files they are decimals in major units written and read with the
currency's exponent from :data:`paymesh.platform.money.CURRENCIES` (JPY 1000,
EUR 10.00, BHD 1.000), never through floats. A file amount that is not a whole
number of minor units is an error ("12.345 EUR"); trailing zeros are not
("1000.00 JPY" is 1000).

**pain.001.001.09** (:func:`pain001`, :func:`read_pain001`). sepaxml builds the
document (one PmtInf: debtor, execution date, one CdtTrfTxInf per transfer);
this module then sets what sepaxml would take from a clock, randomness or its
two-decimal amounts: GrpHdr MsgId and CreDtTm, PmtInfId (the message id), every
InstdAmt with the currency's exponent, NbOfTxs and CtrlSum of GrpHdr and PmtInf,
BtchBookg ``false`` (one booking per transfer, as the statement shows them),
SvcLvl SEPA and ChrgBr SLEV for EUR only (ChrgBr SHAR otherwise), and drops an
empty RmtInf. The result is validated against the XSD sepaxml ships before it is
returned. A file has one currency (the debtor account's), at least one transfer,
and EndToEndIds that are unique, non-empty and not ``NOTPROVIDED``; IBANs pass
their mod-97 check. :func:`read_pain001` checks the same, plus the XSD and both
NbOfTxs/CtrlSum pairs.

**camt.053** (:func:`read_camt053`, :func:`camt053`). Read for any
``camt.053.001.NN`` namespace (.02 to .13: elements are found by name within the
document's own namespace), one Stmt per file. Per Ntry: Amt and its Ccy,
CdtDbtInd, Sts BOOK (``<Sts>BOOK</Sts>`` in .02, ``<Sts><Cd>BOOK</Cd></Sts>``
later), BookgDt/Dt (or the date of BookgDt/DtTm); from NtryDtls/TxDtls:
Refs/EndToEndId (``NOTPROVIDED`` reads as ""), RtrInf/Rsn/Cd (or Prtry) as
``return_reason``, RmtInf/Ustrd (joined by spaces) as ``reference``; the entry's
NtryRef, else its AcctSvcrRef, as ``entry_ref``. An Ntry with several TxDtls (a
batch booking) becomes one entry per TxDtls, each with its own amount (TxDtls/Amt,
or AmtDtls/TxAmt/Amt in .02), which must add up to the Ntry's. The opening
balance is Bal OPBD (or PRCD); when CLBD is there too it must equal the opening
balance plus the entries. Parsed with lxml rather than a camt library: pycamt
1.1.1 returns neither Stmt/Id nor RtrInf and flattens every statement's entries
into one list; camt053 0.0.23 reads those but not a batch's per-transaction
amounts, and brings a web server and some twenty other packages with it.
:func:`camt053` writes camt.053.001.08; Bal is mandatory there, so a statement
without a known ``opening_balance`` gives a file that lacks only that to be valid.

**Statement CSV** (:func:`read_statement_csv`): UTF-8 (a BOM is tolerated), comma
separated, quoted as by Python's csv module; a header row exactly::

    statement_id,account_iban,currency,booked_on,direction,amount,end_to_end_id,reference,return_reason

then one row per entry: statement_id, account_iban and currency the same on
every row; booked_on ``YYYY-MM-DD``; direction ``CRDT`` (money in) or ``DBIT``;
amount a positive decimal in major units (``12.34``); end_to_end_id, reference
and return_reason may be empty. from_date and to_date are the first and last
booked_on. An error names the row by its line in the file (the header is row 1).

Untrusted XML is parsed with entities, DTDs and the network off, a DOCTYPE is
refused, and no input may exceed :data:`MAX_FILE_BYTES`. Every refusal is a
:class:`BankFileError` whose message says what and where.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from types import MappingProxyType
from typing import Final

from lxml import etree
from sepaxml import SepaTransfer

from paymesh.platform.money import CURRENCIES, MAX_AMOUNT, is_valid_amount

__all__ = [
    "CAMT053",
    "MAX_FILE_BYTES",
    "PAIN001",
    "STATEMENT_CSV_HEADER",
    "BankFileError",
    "BankStatement",
    "CreditTransfer",
    "Party",
    "PaymentFile",
    "StatementEntry",
    "camt053",
    "execute_pain001",
    "pain001",
    "read_camt053",
    "read_pain001",
    "read_statement_csv",
]

PAIN001: Final = "pain.001.001.09"
CAMT053: Final = "camt.053.001.08"
MAX_FILE_BYTES: Final = 10 * 1024 * 1024
STATEMENT_CSV_HEADER: Final = (
    "statement_id",
    "account_iban",
    "currency",
    "booked_on",
    "direction",
    "amount",
    "end_to_end_id",
    "reference",
    "return_reason",
)

_ISO_NS: Final = "urn:iso:std:iso:20022:tech:xsd:"
_PAIN001_NS: Final = _ISO_NS + PAIN001
_CAMT053_NS: Final = re.compile(re.escape(_ISO_NS) + r"camt\.053\.001\.\d\d")
_NOT_PROVIDED: Final = "NOTPROVIDED"
# A balance is a sum: it may pass MAX_AMOUNT, up to the 18 digits the formats allow.
_MAX_BALANCE: Final = 10**18 - 1
_NO_RETURNS: Final[Mapping[str, str]] = MappingProxyType({})
_DECIMAL: Final = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18})?")
_IBAN: Final = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}")
_REASON: Final = re.compile(r"[A-Z0-9]{4}")
# Characters XML 1.0 cannot carry, and C0 controls (a CR would not survive the XML).
_BAD_CHARS: Final = re.compile(r"[\x00-\x1f\ufffe\uffff]")


class BankFileError(ValueError):
    """A file that is malformed or breaks the format's rules: the message says what and
    where (safe to show a client)."""


@dataclass(frozen=True)
class Party:
    """An account holder: ``bic`` may be "" (the IBAN alone routes the payment)."""

    name: str
    iban: str
    bic: str


@dataclass(frozen=True)
class CreditTransfer:
    """One payment of a payment file, to ``creditor``."""

    end_to_end_id: str
    amount: int
    currency: str
    creditor: Party
    remittance: str = ""


@dataclass(frozen=True)
class PaymentFile:
    """A pain.001: the debtor's transfers to execute on ``execution_date``."""

    message_id: str
    created_at: datetime  # aware; written in UTC
    execution_date: date
    debtor: Party
    transfers: tuple[CreditTransfer, ...]


@dataclass(frozen=True)
class StatementEntry:
    """One booking on the statement's account."""

    amount: int  # minor units, positive
    currency: str
    credit: bool  # CRDT, money in to the account; DBIT otherwise
    booked_on: date
    end_to_end_id: str = ""  # NtryDtls/TxDtls/Refs/EndToEndId
    reference: str = ""  # TxDtls/RmtInf/Ustrd
    return_reason: str = ""  # TxDtls/RtrInf/Rsn/Cd, e.g. "AC04"; "" when not a return
    entry_ref: str = ""  # NtryRef, else AcctSvcrRef: for display


@dataclass(frozen=True)
class BankStatement:
    """A statement of one account; ``opening_balance`` is signed minor units (Bal OPBD)."""

    statement_id: str
    account_iban: str
    currency: str
    from_date: date | None
    to_date: date | None
    entries: tuple[StatementEntry, ...]
    opening_balance: int | None = None

    @property
    def closing_balance(self) -> int | None:
        """The opening balance plus the entries, when the opening balance is known."""
        if self.opening_balance is None:
            return None
        return self.opening_balance + sum(e.amount if e.credit else -e.amount for e in self.entries)


# --- amounts, text, XML ------------------------------------------------------


def _major(amount: int, currency: str) -> str:
    exponent = CURRENCIES[currency]
    digits = str(abs(amount)).rjust(exponent + 1, "0")
    sign = "-" if amount < 0 else ""
    return sign + (f"{digits[:-exponent]}.{digits[-exponent:]}" if exponent else digits)


def _minor(text: str, currency: str, where: str, *, bound: int = MAX_AMOUNT) -> int:
    """Minor units of a decimal in major units; the amount may be 0."""
    if currency not in CURRENCIES:
        raise BankFileError(f"{where}: unknown currency {currency!r}")
    if not _DECIMAL.fullmatch(text):
        raise BankFileError(f"{where}: amount {text!r} is not a decimal number")
    exponent = CURRENCIES[currency]
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(text).scaleb(exponent)
    if value != value.to_integral_value():
        raise BankFileError(
            f"{where}: amount {text} {currency} has more decimals than {currency}'s {exponent}"
        )
    if value > bound:
        raise BankFileError(f"{where}: amount {text} {currency} is too large")
    return int(value)


def _positive(text: str, currency: str, where: str) -> int:
    amount = _minor(text, currency, where)
    if amount == 0:
        raise BankFileError(f"{where}: amount must be positive")
    return amount


def _decimal(text: str, where: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise BankFileError(f"{where}: {text!r} is not a decimal number") from None


def _iban_ok(iban: str) -> bool:
    if not _IBAN.fullmatch(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _check_text(value: str, where: str, max_len: int, *, required: bool = True) -> None:
    if required and not value:
        raise BankFileError(f"{where} is empty")
    if len(value) > max_len:
        raise BankFileError(f"{where} is longer than {max_len} characters")
    if _BAD_CHARS.search(value) or value != value.strip():
        raise BankFileError(f"{where} has control characters or surrounding spaces")


def _check_party(party: Party, where: str) -> None:
    _check_text(party.name, f"{where} name", 140)
    if not _iban_ok(party.iban):
        raise BankFileError(f"{where} IBAN {party.iban!r} is not a valid IBAN")
    _check_text(party.bic, f"{where} BIC", 11, required=False)


def _utc_text(moment: datetime, where: str) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BankFileError(f"{where} must be an aware datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_utc(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BankFileError(f"{where}: {text!r} is not an ISO date-time") from None
    if moment.tzinfo is None:
        raise BankFileError(f"{where}: {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def _parse_date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BankFileError(f"{where}: {text!r} is not a date (YYYY-MM-DD)") from None


def _check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise BankFileError(f"the {what} has {len(data)} bytes; the limit is {MAX_FILE_BYTES}")


def _parse_xml(data: bytes, what: str) -> etree._Element:
    _check_size(data, what)
    # Refused before libxml2 sees its entities; the check after parsing covers encodings
    # where the bytes differ (UTF-16).
    if b"<!DOCTYPE" in data:
        raise BankFileError(f"the {what} has a DOCTYPE, which bank files never have")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise BankFileError(f"the {what} is not well-formed XML: {e.msg}") from None
    doctype: str = root.getroottree().docinfo.doctype  # type: ignore[union-attr]  # not in lxml-stubs
    if doctype:
        raise BankFileError(f"the {what} has a DOCTYPE, which bank files never have")
    return root


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


class _Doc:
    """Element look-ups by local names, in one document's namespace."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{step}" for step in path.split("/"))

    def find(self, element: etree._Element, path: str) -> etree._Element | None:
        return element.find(self._path(path))

    def all(self, element: etree._Element, path: str) -> list[etree._Element]:
        return list(element.iterfind(self._path(path)))

    def text(self, element: etree._Element, path: str) -> str:
        found = self.find(element, path)
        return (found.text or "").strip() if found is not None else ""

    def need(self, element: etree._Element, path: str, where: str) -> str:
        text = self.text(element, path)
        if not text:
            raise BankFileError(f"{where}: {path} is missing")
        return text

    def sub(
        self, parent: etree._Element, tag: str, text: str = "", **attrib: str
    ) -> etree._Element:
        child = etree.SubElement(parent, f"{{{self.ns}}}{tag}", attrib)
        if text:
            child.text = text
        return child


@functools.cache
def _pain001_schema() -> etree.XMLSchema:
    xsd = importlib.resources.files("sepaxml").joinpath("schemas", f"{PAIN001}.xsd")
    return etree.XMLSchema(etree.fromstring(xsd.read_bytes()))


def _check_pain001_schema(root: etree._Element) -> None:
    try:
        _pain001_schema().assertValid(root)
    except etree.DocumentInvalid as e:
        message = re.sub(r"\{[^}]*\}", "", str(e))
        raise BankFileError(f"not valid {PAIN001}: {message}") from None


# --- pain.001 ----------------------------------------------------------------


def _file_currency(f: PaymentFile) -> str:
    _check_text(f.message_id, "message_id", 35)
    _utc_text(f.created_at, "created_at")
    _check_party(f.debtor, "debtor")
    if not f.transfers:
        raise BankFileError("a payment file needs at least one transfer")
    currency = f.transfers[0].currency
    seen: set[str] = set()
    for n, t in enumerate(f.transfers, 1):
        where = f"transfer {n}"
        _check_text(t.end_to_end_id, f"{where} end_to_end_id", 35)
        if t.end_to_end_id == _NOT_PROVIDED:
            raise BankFileError(f"{where}: end_to_end_id {_NOT_PROVIDED} is reserved")
        if t.end_to_end_id in seen:
            raise BankFileError(f"{where}: end_to_end_id {t.end_to_end_id!r} is used twice")
        seen.add(t.end_to_end_id)
        if t.currency not in CURRENCIES:
            raise BankFileError(f"{where}: unknown currency {t.currency!r}")
        if t.currency != currency:
            raise BankFileError(f"{where}: currency {t.currency} is not the file's {currency}")
        if not is_valid_amount(t.amount):
            raise BankFileError(f"{where}: amount {t.amount!r} is not a positive amount")
        _check_party(t.creditor, f"{where} creditor")
        _check_text(t.remittance, f"{where} remittance", 140, required=False)
    return currency


def pain001(f: PaymentFile) -> bytes:
    """An ISO 20022 pain.001.001.09 CustomerCreditTransferInitiation, built with sepaxml,
    valid against the official XSD (validated before it is returned; BankFileError
    otherwise). GrpHdr NbOfTxs/CtrlSum and PmtInf NbOfTxs/CtrlSum right; EndToEndId =
    the transfer's end_to_end_id; amounts as decimals from minor units using the
    currency's exponent (never floats)."""
    currency = _file_currency(f)
    config: dict[str, object] = {
        "name": f.debtor.name,
        "IBAN": f.debtor.iban,
        "currency": currency,
        "batch": True,
        "domestic": currency != "EUR",
    }
    if f.debtor.bic:
        config["BIC"] = f.debtor.bic
    sepa = SepaTransfer(config, schema=PAIN001, clean=False)
    for t in f.transfers:
        payment: dict[str, object] = {
            "name": t.creditor.name,
            "IBAN": t.creditor.iban,
            "amount": t.amount,
            "currency": t.currency,
            "description": t.remittance,
            "execution_date": f.execution_date,
            "endtoend_id": t.end_to_end_id,
        }
        if t.creditor.bic:
            payment["BIC"] = t.creditor.bic
        sepa.add_payment(payment)
    root = _parse_xml(sepa.export(validate=False), PAIN001)
    doc = _Doc(_PAIN001_NS)
    total = _major(sum(t.amount for t in f.transfers), currency)
    count = str(len(f.transfers))
    header = doc.find(root, "CstmrCdtTrfInitn/GrpHdr")
    info = doc.find(root, "CstmrCdtTrfInitn/PmtInf")
    assert header is not None
    assert info is not None
    for element, path, text in [
        (header, "MsgId", f.message_id),
        (header, "CreDtTm", _utc_text(f.created_at, "created_at")),
        (header, "NbOfTxs", count),
        (header, "CtrlSum", total),
        (info, "PmtInfId", f.message_id),
        (info, "BtchBookg", "false"),
        (info, "NbOfTxs", count),
        (info, "CtrlSum", total),
        (info, "ChrgBr", "SLEV" if currency == "EUR" else "SHAR"),
    ]:
        found = doc.find(element, path)
        assert found is not None, path
        found.text = text
    for t, tx in zip(f.transfers, doc.all(info, "CdtTrfTxInf"), strict=True):
        amount = doc.find(tx, "Amt/InstdAmt")
        assert amount is not None
        amount.text = _major(t.amount, t.currency)
        remittance = doc.find(tx, "RmtInf")
        if not t.remittance and remittance is not None:
            tx.remove(remittance)
    _check_pain001_schema(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _read_party(doc: _Doc, info: etree._Element, role: str, agent: str, where: str) -> Party:
    iban = doc.text(info, f"{role}Acct/Id/IBAN")
    if not iban:
        raise BankFileError(f"{where}: {role}Acct/Id/IBAN is missing (only IBANs are supported)")
    if not _iban_ok(iban):
        raise BankFileError(f"{where}: {role} IBAN {iban!r} is not a valid IBAN")
    return Party(
        name=doc.text(info, f"{role}/Nm"),
        iban=iban,
        bic=doc.text(info, f"{agent}/FinInstnId/BICFI"),
    )


def _check_totals(
    doc: _Doc, element: etree._Element, count: int, total: Decimal, where: str
) -> None:
    if int(doc.need(element, "NbOfTxs", where)) != count:
        raise BankFileError(f"{where}: NbOfTxs is not {count}, the number of transfers")
    ctrl_sum = doc.text(element, "CtrlSum")
    if ctrl_sum and _decimal(ctrl_sum, f"{where} CtrlSum") != total:
        raise BankFileError(f"{where}: CtrlSum {ctrl_sum} is not {total}, the sum of the amounts")


def read_pain001(data: bytes) -> PaymentFile:
    """The payment file in ``data``, as the bank reads it: BankFileError when it is not
    well-formed, not valid against the pain.001.001.09 XSD, or breaks a rule of
    :func:`pain001` (one PmtInf and one currency, unique EndToEndIds, IBANs, totals)."""
    root = _parse_xml(data, PAIN001)
    if root.tag != f"{{{_PAIN001_NS}}}Document":
        raise BankFileError(f"not a {PAIN001} document: the root element is {root.tag}")
    _check_pain001_schema(root)
    doc = _Doc(_PAIN001_NS)
    initiation = doc.find(root, "CstmrCdtTrfInitn")
    assert initiation is not None
    infos = doc.all(initiation, "PmtInf")
    if len(infos) != 1:
        raise BankFileError(f"the file has {len(infos)} PmtInf; one per file is supported")
    info = infos[0]
    if doc.find(info, "ReqdExctnDt/Dt") is None:
        raise BankFileError("PmtInf: ReqdExctnDt/Dt is missing (a DtTm is not supported)")
    transfers: list[CreditTransfer] = []
    seen: set[str] = set()
    currency = ""
    total = Decimal(0)
    for n, tx in enumerate(doc.all(info, "CdtTrfTxInf"), 1):
        where = f"transfer {n}"
        amount = doc.find(tx, "Amt/InstdAmt")
        if amount is None:
            raise BankFileError(f"{where}: only Amt/InstdAmt is supported")
        currency = currency or amount.get("Ccy", "")
        if amount.get("Ccy") != currency:
            raise BankFileError(
                f"{where}: currency {amount.get('Ccy')} is not the file's {currency}"
            )
        text = (amount.text or "").strip()
        total += _decimal(text, where)
        end_to_end_id = doc.text(tx, "PmtId/EndToEndId")
        if end_to_end_id == _NOT_PROVIDED:
            end_to_end_id = ""
        elif end_to_end_id in seen:
            raise BankFileError(f"{where}: EndToEndId {end_to_end_id!r} is used twice")
        seen.add(end_to_end_id)
        transfers.append(
            CreditTransfer(
                end_to_end_id=end_to_end_id,
                amount=_positive(text, currency, where),
                currency=currency,
                creditor=_read_party(doc, tx, "Cdtr", "CdtrAgt", where),
                remittance=" ".join(u.text or "" for u in doc.all(tx, "RmtInf/Ustrd")),
            )
        )
    header = doc.find(initiation, "GrpHdr")
    assert header is not None
    _check_totals(doc, header, len(transfers), total, "GrpHdr")
    _check_totals(doc, info, len(transfers), total, "PmtInf")
    return PaymentFile(
        message_id=doc.text(header, "MsgId"),
        created_at=_parse_utc(doc.text(header, "CreDtTm"), "GrpHdr CreDtTm"),
        execution_date=_parse_date(doc.text(info, "ReqdExctnDt/Dt"), "PmtInf ReqdExctnDt"),
        debtor=_read_party(doc, info, "Dbtr", "DbtrAgt", "PmtInf"),
        transfers=tuple(transfers),
    )


# --- camt.053 ----------------------------------------------------------------


def _check_statement(s: BankStatement) -> None:
    _check_text(s.statement_id, "statement_id", 35)
    if not _IBAN.fullmatch(s.account_iban):
        raise BankFileError(f"account_iban {s.account_iban!r} is not an IBAN")
    if s.currency not in CURRENCIES:
        raise BankFileError(f"unknown currency {s.currency!r}")
    if (s.from_date is None) != (s.to_date is None):
        raise BankFileError("from_date and to_date are both known or both None")
    for n, e in enumerate(s.entries, 1):
        where = f"entry {n}"
        if e.currency not in CURRENCIES:
            raise BankFileError(f"{where}: unknown currency {e.currency!r}")
        if not is_valid_amount(e.amount):
            raise BankFileError(f"{where}: amount {e.amount!r} is not a positive amount")
        _check_text(e.end_to_end_id, f"{where} end_to_end_id", 35, required=False)
        _check_text(e.reference, f"{where} reference", 140, required=False)
        _check_text(e.entry_ref, f"{where} entry_ref", 35, required=False)
        if e.return_reason and not _REASON.fullmatch(e.return_reason):
            raise BankFileError(f"{where}: return_reason {e.return_reason!r} is not a code")
    if s.opening_balance is not None and any(e.currency != s.currency for e in s.entries):
        raise BankFileError("balances need every entry in the account's currency")
    for name, balance in [("opening", s.opening_balance), ("closing", s.closing_balance)]:
        if balance is not None and abs(balance) > _MAX_BALANCE:
            raise BankFileError(f"the {name} balance is too large")


def _balance(
    doc: _Doc, stmt: etree._Element, code: str, amount: int, currency: str, on: date
) -> None:
    bal = doc.sub(stmt, "Bal")
    doc.sub(doc.sub(doc.sub(bal, "Tp"), "CdOrPrtry"), "Cd", code)
    doc.sub(bal, "Amt", _major(abs(amount), currency), Ccy=currency)
    doc.sub(bal, "CdtDbtInd", "DBIT" if amount < 0 else "CRDT")
    doc.sub(doc.sub(bal, "Dt"), "Dt", on.isoformat())


def camt053(statement: BankStatement, *, created_at: datetime) -> bytes:
    """A camt.053.001.08 BankToCustomerStatement with one Stmt (see the module's doc);
    ``read_camt053(camt053(s)) == s``."""
    _check_statement(statement)
    s = statement
    doc = _Doc(_ISO_NS + CAMT053)
    nsmap = {None: doc.ns}
    root = etree.Element(f"{{{doc.ns}}}Document", nsmap=nsmap)  # type: ignore[arg-type]
    message = doc.sub(root, "BkToCstmrStmt")
    header = doc.sub(message, "GrpHdr")
    doc.sub(header, "MsgId", s.statement_id)
    doc.sub(header, "CreDtTm", _utc_text(created_at, "created_at"))
    stmt = doc.sub(message, "Stmt")
    doc.sub(stmt, "Id", s.statement_id)
    doc.sub(stmt, "CreDtTm", _utc_text(created_at, "created_at"))
    if s.from_date is not None and s.to_date is not None:
        period = doc.sub(stmt, "FrToDt")
        doc.sub(period, "FrDtTm", f"{s.from_date.isoformat()}T00:00:00")
        doc.sub(period, "ToDtTm", f"{s.to_date.isoformat()}T23:59:59")
    account = doc.sub(stmt, "Acct")
    doc.sub(doc.sub(account, "Id"), "IBAN", s.account_iban)
    doc.sub(account, "Ccy", s.currency)
    closing = s.closing_balance
    if s.opening_balance is not None and closing is not None:
        first = s.from_date or created_at.date()
        _balance(doc, stmt, "OPBD", s.opening_balance, s.currency, first)
        _balance(doc, stmt, "CLBD", closing, s.currency, s.to_date or first)
    for e in s.entries:
        _entry(doc, stmt, e)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _entry(doc: _Doc, stmt: etree._Element, e: StatementEntry) -> None:
    direction = "CRDT" if e.credit else "DBIT"
    ntry = doc.sub(stmt, "Ntry")
    if e.entry_ref:
        doc.sub(ntry, "NtryRef", e.entry_ref)
    doc.sub(ntry, "Amt", _major(e.amount, e.currency), Ccy=e.currency)
    doc.sub(ntry, "CdtDbtInd", direction)
    doc.sub(doc.sub(ntry, "Sts"), "Cd", "BOOK")
    doc.sub(doc.sub(ntry, "BookgDt"), "Dt", e.booked_on.isoformat())
    # A transfer we issued, or the return of one, is family ICDT; one we received, RCDT.
    issued = e.credit == bool(e.return_reason)
    domain = doc.sub(doc.sub(ntry, "BkTxCd"), "Domn")
    doc.sub(domain, "Cd", "PMNT")
    family = doc.sub(domain, "Fmly")
    doc.sub(family, "Cd", "ICDT" if issued else "RCDT")
    sub_family = "RRTN" if e.return_reason else ("ESCT" if e.currency == "EUR" else "DMCT")
    doc.sub(family, "SubFmlyCd", sub_family)
    tx = doc.sub(doc.sub(ntry, "NtryDtls"), "TxDtls")
    doc.sub(doc.sub(tx, "Refs"), "EndToEndId", e.end_to_end_id or _NOT_PROVIDED)
    doc.sub(tx, "Amt", _major(e.amount, e.currency), Ccy=e.currency)
    doc.sub(tx, "CdtDbtInd", direction)
    if e.reference:
        doc.sub(doc.sub(tx, "RmtInf"), "Ustrd", e.reference)
    if e.return_reason:
        doc.sub(doc.sub(doc.sub(tx, "RtrInf"), "Rsn"), "Cd", e.return_reason)


def _date_of(doc: _Doc, element: etree._Element, where: str) -> date | None:
    text = doc.text(element, "Dt")
    if text:
        return _parse_date(text, where)
    text = doc.text(element, "DtTm")
    if text:
        return _parse_date(text[:10], where)
    return None


def _read_entries(doc: _Doc, ntry: etree._Element, where: str) -> Iterable[StatementEntry]:
    amount = doc.find(ntry, "Amt")
    if amount is None or not (amount.text or "").strip():
        raise BankFileError(f"{where}: Amt is missing")
    currency = amount.get("Ccy", "")
    total = _positive((amount.text or "").strip(), currency, where)
    direction = doc.text(ntry, "CdtDbtInd")
    if direction not in ("CRDT", "DBIT"):
        raise BankFileError(f"{where}: CdtDbtInd is {direction or 'missing'}, not CRDT or DBIT")
    status = doc.text(ntry, "Sts/Cd") or doc.text(ntry, "Sts")
    if status != "BOOK":
        raise BankFileError(f"{where}: status is {status or 'missing'}; only BOOK is read")
    booking = doc.find(ntry, "BookgDt")
    booked_on = _date_of(doc, booking, f"{where} BookgDt") if booking is not None else None
    if booked_on is None:
        raise BankFileError(f"{where}: BookgDt is missing")
    entry_ref = doc.text(ntry, "NtryRef") or doc.text(ntry, "AcctSvcrRef")
    details = doc.all(ntry, "NtryDtls/TxDtls")
    if not details:
        yield StatementEntry(total, currency, direction == "CRDT", booked_on, entry_ref=entry_ref)
        return
    parts: list[int] = []
    for k, tx in enumerate(details, 1):
        if len(details) == 1:
            parts.append(total)
        else:
            part = doc.find(tx, "Amt")
            part = part if part is not None else doc.find(tx, "AmtDtls/TxAmt/Amt")
            if part is None or part.get("Ccy") != currency:
                raise BankFileError(
                    f"{where}: TxDtls {k} of a batch has no amount in {currency or 'its currency'}"
                )
            parts.append(_positive((part.text or "").strip(), currency, f"{where} TxDtls {k}"))
        tx_direction = doc.text(tx, "CdtDbtInd")
        if tx_direction and tx_direction != direction:
            raise BankFileError(f"{where}: TxDtls {k} is {tx_direction} in a {direction} entry")
    if sum(parts) != total:
        raise BankFileError(f"{where}: the TxDtls amounts do not add up to the entry's Amt")
    for tx, part_amount in zip(details, parts, strict=True):
        end_to_end_id = doc.text(tx, "Refs/EndToEndId")
        yield StatementEntry(
            amount=part_amount,
            currency=currency,
            credit=direction == "CRDT",
            booked_on=booked_on,
            end_to_end_id="" if end_to_end_id == _NOT_PROVIDED else end_to_end_id,
            reference=" ".join((u.text or "").strip() for u in doc.all(tx, "RmtInf/Ustrd")),
            return_reason=doc.text(tx, "RtrInf/Rsn/Cd") or doc.text(tx, "RtrInf/Rsn/Prtry"),
            entry_ref=entry_ref,
        )


def _read_balance(doc: _Doc, stmt: etree._Element, codes: tuple[str, ...]) -> int | None:
    for bal in doc.all(stmt, "Bal"):
        code = doc.text(bal, "Tp/CdOrPrtry/Cd")
        if code in codes:
            where = f"Bal {code}"
            amount = doc.find(bal, "Amt")
            if amount is None:
                raise BankFileError(f"{where}: Amt is missing")
            text = (amount.text or "").strip()
            value = _minor(text, amount.get("Ccy", ""), where, bound=_MAX_BALANCE)
            direction = doc.need(bal, "CdtDbtInd", where)
            if direction not in ("CRDT", "DBIT"):
                raise BankFileError(f"{where}: CdtDbtInd is {direction}, not CRDT or DBIT")
            return -value if direction == "DBIT" else value
    return None


def read_camt053(data: bytes) -> BankStatement:
    """The statement in a camt.053.001.02 to .13 document with one Stmt (see the module's
    doc for what is read from where); BankFileError naming the entry otherwise."""
    root = _parse_xml(data, "camt.053 statement")
    namespace = etree.QName(root).namespace or ""
    if _local(root) != "Document" or not _CAMT053_NS.fullmatch(namespace):
        raise BankFileError(f"not a camt.053 document: the root element is {root.tag}")
    doc = _Doc(namespace)
    message = doc.find(root, "BkToCstmrStmt")
    if message is None:
        raise BankFileError("Document/BkToCstmrStmt is missing")
    statements = doc.all(message, "Stmt")
    if len(statements) != 1:
        raise BankFileError(f"the file has {len(statements)} Stmt; one per file is supported")
    stmt = statements[0]
    statement_id = doc.need(stmt, "Id", "Stmt")
    account_iban = doc.need(stmt, "Acct/Id/IBAN", "Stmt (only IBAN accounts are supported)")
    entries = tuple(
        entry
        for n, ntry in enumerate(doc.all(stmt, "Ntry"), 1)
        for entry in _read_entries(doc, ntry, f"entry {n}")
    )
    currency = doc.text(stmt, "Acct/Ccy")
    if not currency:
        currencies = {e.currency for e in entries}
        if len(currencies) != 1:
            raise BankFileError("Stmt: Acct/Ccy is missing")
        (currency,) = currencies
    if currency not in CURRENCIES:
        raise BankFileError(f"Stmt: unknown currency {currency!r}")
    period = doc.find(stmt, "FrToDt")
    from_date: date | None = None
    to_date: date | None = None
    if period is not None:
        from_date = _parse_date(doc.need(period, "FrDtTm", "FrToDt")[:10], "FrToDt FrDtTm")
        to_date = _parse_date(doc.need(period, "ToDtTm", "FrToDt")[:10], "FrToDt ToDtTm")
    statement = BankStatement(
        statement_id=statement_id,
        account_iban=account_iban,
        currency=currency,
        from_date=from_date,
        to_date=to_date,
        entries=entries,
        opening_balance=_read_balance(doc, stmt, ("OPBD", "PRCD")),
    )
    closing = _read_balance(doc, stmt, ("CLBD",))
    one_currency = all(e.currency == currency for e in entries)
    if closing is not None and one_currency and statement.closing_balance not in (None, closing):
        raise BankFileError(
            f"Bal CLBD {_major(closing, currency)} is not the opening balance plus the entries"
            f" ({_major(statement.closing_balance or 0, currency)})"
        )
    return statement


# --- CSV ---------------------------------------------------------------------


def read_statement_csv(data: bytes) -> BankStatement:
    """The statement in the CSV layout of the module's doc; BankFileError naming the row."""
    _check_size(data, "statement CSV")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BankFileError(f"the statement CSV is not UTF-8 (byte {e.start})") from None
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows, None)
        if header is None or tuple(header) != STATEMENT_CSV_HEADER:
            raise BankFileError(f"row 1: the header must be {','.join(STATEMENT_CSV_HEADER)}")
        entries: list[StatementEntry] = []
        first: list[str] = []
        for row in rows:
            n = rows.line_num
            if not row:
                continue
            if len(row) != len(STATEMENT_CSV_HEADER):
                raise BankFileError(f"row {n}: {len(row)} fields, not {len(STATEMENT_CSV_HEADER)}")
            values = [v.strip() for v in row]
            first = first or values
            for k, name in enumerate(STATEMENT_CSV_HEADER[:3]):
                if values[k] != first[k]:
                    raise BankFileError(f"row {n}: {name} {values[k]!r} is not {first[k]!r}")
            currency, booked_on, direction, amount, end_to_end_id, reference, reason = values[2:]
            if direction not in ("CRDT", "DBIT"):
                raise BankFileError(f"row {n}: direction {direction!r} is not CRDT or DBIT")
            if reason and not _REASON.fullmatch(reason):
                raise BankFileError(f"row {n}: return_reason {reason!r} is not a code")
            entries.append(
                StatementEntry(
                    amount=_positive(amount, currency, f"row {n}"),
                    currency=currency,
                    credit=direction == "CRDT",
                    booked_on=_parse_date(booked_on, f"row {n}"),
                    end_to_end_id="" if end_to_end_id == _NOT_PROVIDED else end_to_end_id,
                    reference=reference,
                    return_reason=reason,
                )
            )
    except csv.Error as e:
        raise BankFileError(f"row {rows.line_num}: {e}") from None
    if not entries:
        raise BankFileError("the statement CSV has no entry rows")
    statement_id, account_iban, currency = first[:3]
    if not statement_id or not account_iban:
        raise BankFileError("row 2: statement_id and account_iban must not be empty")
    return BankStatement(
        statement_id=statement_id,
        account_iban=account_iban,
        currency=currency,
        from_date=min(e.booked_on for e in entries),
        to_date=max(e.booked_on for e in entries),
        entries=tuple(entries),
    )


# --- the simulated bank ------------------------------------------------------


def execute_pain001(
    data: bytes, *, statement_id: str, booked_on: date, returns: Mapping[str, str] = _NO_RETURNS
) -> BankStatement:
    """The simulated bank: executes the payment file in ``data`` on ``booked_on`` and
    answers the statement of the debtor's account for that day. One DBIT entry per
    transfer (reference and EndToEndId the transfer's end_to_end_id, entry_ref its
    number), then for each end_to_end_id in ``returns`` a CRDT entry of the same amount
    with that return reason (e.g. "AC04" closed account, "AM04" insufficient funds). The
    account opened the day holding exactly what the file pays (its opening balance), so
    the statement's balances are complete and it closes with what came back."""
    f = read_pain001(data)
    by_id = {t.end_to_end_id: t for t in f.transfers if t.end_to_end_id}
    for end_to_end_id, reason in returns.items():
        if end_to_end_id not in by_id:
            raise BankFileError(f"return of {end_to_end_id!r}: no such EndToEndId in the file")
        if not _REASON.fullmatch(reason):
            raise BankFileError(f"return of {end_to_end_id!r}: {reason!r} is not a reason code")
    debits = [
        StatementEntry(
            amount=t.amount,
            currency=t.currency,
            credit=False,
            booked_on=booked_on,
            end_to_end_id=t.end_to_end_id,
            reference=t.end_to_end_id,
            entry_ref=str(n),
        )
        for n, t in enumerate(f.transfers, 1)
    ]
    credits = [
        StatementEntry(
            amount=by_id[end_to_end_id].amount,
            currency=by_id[end_to_end_id].currency,
            credit=True,
            booked_on=booked_on,
            end_to_end_id=end_to_end_id,
            reference=end_to_end_id,
            return_reason=reason,
            entry_ref=str(len(debits) + n),
        )
        for n, (end_to_end_id, reason) in enumerate(returns.items(), 1)
    ]
    return BankStatement(
        statement_id=statement_id,
        account_iban=f.debtor.iban,
        currency=f.transfers[0].currency,
        from_date=booked_on,
        to_date=booked_on,
        entries=tuple(debits + credits),
        opening_balance=sum(t.amount for t in f.transfers),
    )
