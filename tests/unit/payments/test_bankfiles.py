"""ISO 20022 bank files: pain.001 out, camt.053 and CSV statements in, the simulated bank."""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from paymesh.payments.bankfiles import (
    MAX_FILE_BYTES,
    BankFileError,
    BankStatement,
    CreditTransfer,
    Party,
    PaymentFile,
    StatementEntry,
    camt053,
    execute_pain001,
    pain001,
    read_camt053,
    read_pain001,
    read_statement_csv,
)
from paymesh.platform.money import CURRENCIES, MAX_AMOUNT

PAIN_NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
NOW = datetime(2026, 12, 6, 6, 30, tzinfo=UTC)
DAY = date(2026, 12, 7)
IBANS = (
    "DE89370400440532013000",
    "GB29NWBK60161331926819",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "BE68539007547034",
)
DEBTOR = Party("Paymesh Ltd", IBANS[0], "COBADEFFXXX")
MERCHANT = Party("Müller & Söhne <GmbH>", IBANS[1], "NWBKGB2L")
# Currencies whose minor unit has 0, 2 and 3 digits.
SOME_CURRENCIES = ("JPY", "EUR", "USD", "BHD", "KWD")


@cache
def official_xsd() -> xmlschema.XMLSchema:
    """sepaxml's shipped pain.001.001.09 XSD, loaded by xmlschema (not the module's lxml)."""
    xsd = importlib.resources.files("sepaxml").joinpath("schemas", "pain.001.001.09.xsd")
    return xmlschema.XMLSchema(xsd.read_text())


def transfer(end_to_end_id: str, amount: int, currency: str = "EUR", **changes: object):
    made = CreditTransfer(end_to_end_id, amount, currency, MERCHANT, f"payout {end_to_end_id}")
    return dataclasses.replace(made, **changes)


def payment_file(*transfers: CreditTransfer, **changes: object) -> PaymentFile:
    made = PaymentFile("MSG-2026-12-06-1", NOW, DAY, DEBTOR, transfers)
    return dataclasses.replace(made, **changes)


THREE = payment_file(
    transfer("po_1", 1000), transfer("po_2", 1, remittance=""), transfer("po_3", 123456)
)


def xml(data: bytes) -> etree._Element:
    return etree.fromstring(data)


# --- pain.001 -----------------------------------------------------------------


def test_pain001_is_valid_against_the_official_xsd_with_totals_and_end_to_end_ids() -> None:
    data = pain001(THREE)
    official_xsd().validate(data.decode())
    root = xml(data)
    assert root.xpath("string(//p:GrpHdr/p:NbOfTxs)", namespaces=PAIN_NS) == "3"
    assert root.xpath("string(//p:GrpHdr/p:CtrlSum)", namespaces=PAIN_NS) == "1244.57"
    assert root.xpath("string(//p:PmtInf/p:NbOfTxs)", namespaces=PAIN_NS) == "3"
    assert root.xpath("string(//p:PmtInf/p:CtrlSum)", namespaces=PAIN_NS) == "1244.57"
    assert root.xpath("//p:EndToEndId/text()", namespaces=PAIN_NS) == ["po_1", "po_2", "po_3"]
    assert root.xpath("//p:InstdAmt/text()", namespaces=PAIN_NS) == ["10.00", "0.01", "1234.56"]
    assert root.xpath("string(//p:GrpHdr/p:MsgId)", namespaces=PAIN_NS) == "MSG-2026-12-06-1"
    assert root.xpath("string(//p:GrpHdr/p:CreDtTm)", namespaces=PAIN_NS) == "2026-12-06T06:30:00Z"
    assert root.xpath("string(//p:ReqdExctnDt/p:Dt)", namespaces=PAIN_NS) == "2026-12-07"
    assert root.xpath("string(//p:BtchBookg)", namespaces=PAIN_NS) == "false"
    assert root.xpath("count(//p:RmtInf)", namespaces=PAIN_NS) == 2


def test_pain001_is_deterministic_and_reads_back() -> None:
    assert pain001(THREE) == pain001(THREE)
    assert read_pain001(pain001(THREE)) == THREE


@pytest.mark.parametrize(
    ("currency", "amount", "text"),
    [("JPY", 1000, "1000"), ("EUR", 5, "0.05"), ("BHD", 1234, "1.234"), ("KWD", 7, "0.007")],
)
def test_amounts_are_written_with_the_currencys_exponent(
    currency: str, amount: int, text: str
) -> None:
    data = pain001(payment_file(transfer("po_1", amount, currency)))
    official_xsd().validate(data.decode())
    assert xml(data).xpath("//p:InstdAmt/text()", namespaces=PAIN_NS) == [text]
    assert xml(data).xpath("string(//p:GrpHdr/p:CtrlSum)", namespaces=PAIN_NS) == text


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Co", "Cn")),
    min_size=1,
    max_size=140,
).filter(lambda s: s == s.strip())


@st.composite
def payment_files(draw: st.DrawFn) -> PaymentFile:
    currency = draw(st.sampled_from(SOME_CURRENCIES))
    count = draw(st.integers(1, 5))
    amounts = draw(st.lists(st.integers(1, MAX_AMOUNT), min_size=count, max_size=count))
    transfers = tuple(
        CreditTransfer(
            end_to_end_id=f"po_{n}",
            amount=amount,
            currency=currency,
            creditor=Party(draw(names), draw(st.sampled_from(IBANS)), ""),
            remittance=draw(st.one_of(st.just(""), names)),
        )
        for n, amount in enumerate(amounts)
    )
    created = draw(st.datetimes(timezones=st.just(UTC))).replace(year=2026)
    return payment_file(*transfers, created_at=created)


@settings(max_examples=60, deadline=None)
@given(payment_files())
def test_any_payment_file_is_valid_and_round_trips(f: PaymentFile) -> None:
    data = pain001(f)
    official_xsd().validate(data.decode())
    assert read_pain001(data) == f
    exponent = CURRENCIES[f.transfers[0].currency]
    for text in xml(data).xpath("//p:InstdAmt/text()", namespaces=PAIN_NS):
        assert len(text.partition(".")[2]) == exponent


def test_a_debtor_without_bic_gives_a_valid_file() -> None:
    f = dataclasses.replace(THREE, debtor=dataclasses.replace(DEBTOR, bic=""))
    official_xsd().validate(pain001(f).decode())
    assert read_pain001(pain001(f)) == f


def test_an_aware_time_in_another_zone_is_written_in_utc() -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    data = pain001(dataclasses.replace(THREE, created_at=paris))
    assert xml(data).xpath("string(//p:CreDtTm)", namespaces=PAIN_NS) == "2026-12-06T06:30:00Z"


@pytest.mark.parametrize(
    ("f", "message"),
    [
        (payment_file(), "at least one transfer"),
        (payment_file(transfer("a", 1), transfer("b", 1, "USD")), "transfer 2: currency USD"),
        (payment_file(transfer("a", 1), transfer("a", 2)), "transfer 2: end_to_end_id 'a'"),
        (payment_file(transfer("", 1)), "transfer 1 end_to_end_id is empty"),
        (payment_file(transfer("NOTPROVIDED", 1)), "reserved"),
        (payment_file(transfer("x" * 36, 1)), "longer than 35"),
        (payment_file(transfer("a", 0)), "transfer 1: amount 0"),
        (payment_file(transfer("a", -5)), "transfer 1: amount -5"),
        (payment_file(transfer("a", MAX_AMOUNT + 1)), "transfer 1: amount"),
        (payment_file(transfer("a", True)), "transfer 1: amount True"),  # type: ignore[arg-type]
        (payment_file(transfer("a", 1, "XXX")), "unknown currency 'XXX'"),
        (
            payment_file(transfer("a", 1, creditor=Party("M", "GB29NWBK60161331926818", ""))),
            "transfer 1 creditor IBAN",
        ),
        (payment_file(transfer("a", 1), debtor=Party("", IBANS[0], "")), "debtor name is empty"),
        (payment_file(transfer("a", 1, remittance="r" * 141)), "remittance is longer than 140"),
        (payment_file(transfer("a", 1, remittance="a\x00b")), "control characters"),
        (payment_file(transfer("a", 1), created_at=datetime(2026, 1, 1)), "aware"),
        (payment_file(transfer("a", 1), message_id=""), "message_id is empty"),
    ],
)
def test_pain001_refuses_a_file_that_breaks_the_rules(f: PaymentFile, message: str) -> None:
    with pytest.raises(BankFileError, match=message.replace("(", r"\(")):
        pain001(f)


def test_pain001_refuses_what_the_xsd_refuses_and_says_where() -> None:
    f = payment_file(transfer("a", 1, creditor=Party("M", IBANS[1], "not a bic")))
    with pytest.raises(BankFileError, match=r"not valid pain\.001\.001\.09: .*BICFI"):
        pain001(f)


# --- reading a pain.001, and hostile XML ---------------------------------------


def _edited(data: bytes, path: str, text: str | None) -> bytes:
    root = xml(data)
    (element,) = root.xpath(path, namespaces=PAIN_NS)
    if text is None:
        element.getparent().remove(element)
    else:
        element.text = text
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        ("//p:GrpHdr/p:MsgId", None, "not valid pain.001.001.09: .*MsgId"),
        ("(//p:IBAN)[2]", "not an iban", "not valid pain.001.001.09: .*IBAN"),
        ("(//p:InstdAmt)[1]", "1.0.0", "not valid pain.001.001.09: .*InstdAmt"),
        ("//p:GrpHdr/p:CtrlSum", "1244.58", "GrpHdr: CtrlSum 1244.58 is not 1244.57"),
        ("//p:PmtInf/p:NbOfTxs", "2", "PmtInf: NbOfTxs is not 3"),
        ("(//p:InstdAmt)[1]", "10.001", "transfer 1: amount 10.001 EUR has more decimals"),
        ("(//p:EndToEndId)[2]", "po_1", "transfer 2: EndToEndId 'po_1' is used twice"),
        ("(//p:IBAN)[2]", "GB29NWBK60161331926818", "transfer 1: Cdtr IBAN"),
        ("//p:GrpHdr/p:CreDtTm", "2026-12-06T06:30:00", "has no UTC offset"),
    ],
)
def test_read_pain001_refuses_a_file_that_breaks_the_xsd_or_the_rules(
    path: str, text: str | None, message: str
) -> None:
    data = pain001(THREE)
    with pytest.raises(BankFileError, match=message):
        read_pain001(_edited(data, path, text))


def test_a_foreign_end_to_end_id_not_provided_reads_as_empty() -> None:
    data = _edited(pain001(THREE), "(//p:EndToEndId)[1]", "NOTPROVIDED")
    assert read_pain001(data).transfers[0].end_to_end_id == ""


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>&lol9;</MsgId></GrpHdr></BkToCstmrStmt></Document>"""


def _external_entity(path: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{path}">]>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        "<Stmt><Id>&xxe;</Id></Stmt></BkToCstmrStmt></Document>"
    ).encode()


@pytest.mark.parametrize("reader", [read_pain001, read_camt053])
def test_hostile_xml_is_refused_not_resolved(
    reader: Callable[[bytes], object], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    read = reader
    with pytest.raises(BankFileError, match="DOCTYPE") as bomb:
        read(BILLION_LAUGHS)
    assert "lollol" not in str(bomb.value)
    with pytest.raises(BankFileError, match="DOCTYPE") as xxe:
        read(_external_entity(secret))
    assert "TOP-SECRET" not in str(xxe.value)
    utf16 = _external_entity(secret).replace(b'"1.0"?>', b'"1.0" encoding="UTF-16"?>')
    with pytest.raises(BankFileError, match="DOCTYPE") as xxe:
        read(utf16.decode().encode("utf-16"))
    assert "TOP-SECRET" not in str(xxe.value)
    with pytest.raises(BankFileError, match="not well-formed"):
        read(b"<Document><unclosed></Document>")
    with pytest.raises(BankFileError, match="not well-formed"):
        read(b"")
    with pytest.raises(BankFileError, match=f"the limit is {MAX_FILE_BYTES}"):
        read(b" " * (MAX_FILE_BYTES + 1))


def test_each_reader_refuses_the_other_documents_root() -> None:
    statement = camt053(
        execute_pain001(pain001(THREE), statement_id="S", booked_on=DAY), created_at=NOW
    )
    with pytest.raises(BankFileError, match=r"not a pain\.001\.001\.09 document"):
        read_pain001(statement)
    with pytest.raises(BankFileError, match=r"not a camt\.053 document"):
        read_camt053(pain001(THREE))
    camt052 = statement.replace(b"camt.053.001.08", b"camt.052.001.08")
    with pytest.raises(BankFileError, match=r"not a camt\.053 document"):
        read_camt053(camt052)


# --- camt.053 -------------------------------------------------------------------

CAMT_053_001_02 = b"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <BkToCstmrStmt>
    <GrpHdr>
      <MsgId>STMT-20261207-0001</MsgId>
      <CreDtTm>2026-12-07T22:15:03+01:00</CreDtTm>
      <MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn>
    </GrpHdr>
    <Stmt>
      <Id>20261207-DE89-001</Id>
      <ElctrncSeqNb>241</ElctrncSeqNb>
      <CreDtTm>2026-12-07T22:15:03+01:00</CreDtTm>
      <FrToDt>
        <FrDtTm>2026-12-07T00:00:00+01:00</FrDtTm>
        <ToDtTm>2026-12-07T23:59:59+01:00</ToDtTm>
      </FrToDt>
      <Acct>
        <Id><IBAN>DE89370400440532013000</IBAN></Id>
        <Ccy>EUR</Ccy>
        <Ownr><Nm>Paymesh Ltd</Nm></Ownr>
        <Svcr><FinInstnId><BIC>COBADEFFXXX</BIC></FinInstnId></Svcr>
      </Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="EUR">10000.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2026-12-07</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="EUR">9915.25</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>2026-12-07</Dt></Dt>
      </Bal>
      <TxsSummry>
        <TtlNtries><NbOfNtries>3</NbOfNtries></TtlNtries>
      </TxsSummry>
      <!-- a payout we sent -->
      <Ntry>
        <NtryRef>0001</NtryRef>
        <Amt Ccy="EUR">250.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2026-12-07</Dt></BookgDt>
        <ValDt><Dt>2026-12-07</Dt></ValDt>
        <AcctSvcrRef>2026120700001</AcctSvcrRef>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn>
          <Prtry><Cd>NTRF+116</Cd><Issr>DK</Issr></Prtry>
        </BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs>
              <MsgId>MSG-2026-12-06-1</MsgId>
              <PmtInfId>MSG-2026-12-06-1</PmtInfId>
              <EndToEndId>po_1</EndToEndId>
            </Refs>
            <AmtDtls><TxAmt><Amt Ccy="EUR">250.00</Amt></TxAmt></AmtDtls>
            <RltdPties>
              <Cdtr><Nm>Merchant A</Nm></Cdtr>
              <CdtrAcct><Id><IBAN>GB29NWBK60161331926819</IBAN></Id></CdtrAcct>
            </RltdPties>
            <RmtInf><Ustrd>payout po_1</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <!-- a customer's top-up by bank transfer -->
      <Ntry>
        <Amt Ccy="EUR">40.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>2026-12-07</Dt></BookgDt>
        <ValDt><Dt>2026-12-07</Dt></ValDt>
        <AcctSvcrRef>2026120700002</AcctSvcrRef>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn>
        </BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
            <RltdPties><Dbtr><Nm>Jane Doe</Nm></Dbtr></RltdPties>
            <RmtInf><Ustrd>TOPUP tu_8f2k</Ustrd><Ustrd>acct_42</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
        <AddtlNtryInf>SEPA CREDIT TRANSFER</AddtlNtryInf>
      </Ntry>
      <!-- the return of an earlier payout: the merchant's account is closed -->
      <Ntry>
        <NtryRef>0003</NtryRef>
        <Amt Ccy="EUR">125.25</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <RvslInd>false</RvslInd>
        <Sts>BOOK</Sts>
        <BookgDt><DtTm>2026-12-07T14:02:11+01:00</DtTm></BookgDt>
        <ValDt><Dt>2026-12-07</Dt></ValDt>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>RRTN</SubFmlyCd></Fmly></Domn>
        </BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs>
              <InstrId>INSTR-9</InstrId>
              <EndToEndId>po_0</EndToEndId>
            </Refs>
            <RtrInf>
              <OrgnlBkTxCd>
                <Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn>
              </OrgnlBkTxCd>
              <Orgtr><Nm>Barclays</Nm></Orgtr>
              <Rsn><Cd>AC04</Cd></Rsn>
              <AddtlInf>ACCOUNT CLOSED</AddtlInf>
            </RtrInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


def test_a_realistic_camt_053_001_02_reads_right() -> None:
    assert read_camt053(CAMT_053_001_02) == BankStatement(
        statement_id="20261207-DE89-001",
        account_iban="DE89370400440532013000",
        currency="EUR",
        from_date=DAY,
        to_date=DAY,
        opening_balance=1_000_000,
        entries=(
            StatementEntry(
                amount=25_000,
                currency="EUR",
                credit=False,
                booked_on=DAY,
                end_to_end_id="po_1",
                reference="payout po_1",
                entry_ref="0001",
            ),
            StatementEntry(
                amount=4_000,
                currency="EUR",
                credit=True,
                booked_on=DAY,
                reference="TOPUP tu_8f2k acct_42",
                entry_ref="2026120700002",
            ),
            StatementEntry(
                amount=12_525,
                currency="EUR",
                credit=True,
                booked_on=DAY,
                end_to_end_id="po_0",
                return_reason="AC04",
                entry_ref="0003",
            ),
        ),
    )


def _camt(old: bytes, new: bytes, data: bytes = CAMT_053_001_02) -> bytes:
    assert old in data, old
    return data.replace(old, new, 1)


BATCH = b"""<Ntry>
        <Amt Ccy="EUR">300.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2026-12-07</Dt></BookgDt>
        <NtryDtls>
          <Btch><NbOfTxs>2</NbOfTxs></Btch>
          <TxDtls><Refs><EndToEndId>po_7</EndToEndId></Refs>
            <Amt Ccy="EUR">100.00</Amt><CdtDbtInd>DBIT</CdtDbtInd></TxDtls>
          <TxDtls><Refs><EndToEndId>po_8</EndToEndId></Refs>
            <AmtDtls><TxAmt><Amt Ccy="EUR">200.00</Amt></TxAmt></AmtDtls></TxDtls>
        </NtryDtls>
      </Ntry>
    </Stmt>"""


def test_a_batch_booking_becomes_one_entry_per_transaction() -> None:
    data = _camt(b"9915.25", b"9615.25", _camt(b"</Stmt>", BATCH))
    entries = read_camt053(data).entries
    assert [(e.end_to_end_id, e.amount, e.credit) for e in entries[3:]] == [
        ("po_7", 10_000, False),
        ("po_8", 20_000, False),
    ]
    uneven = _camt(b"200.00", b"199.99", _camt(b"</Stmt>", BATCH))
    with pytest.raises(BankFileError, match="entry 4: the TxDtls amounts do not add up"):
        read_camt053(uneven)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"<Id>20261207-DE89-001</Id>", b"", "Stmt: Id is missing"),
        (b'"EUR">40.00<', b'"EUR">40.001<', "entry 2: amount 40.001 EUR has more decimals"),
        (b'"EUR">40.00<', b'"XXX">40.00<', "entry 2: unknown currency 'XXX'"),
        (b'"EUR">40.00<', b'"EUR">-40.00<', "entry 2: amount '-40.00' is not a decimal"),
        (b'"EUR">40.00<', b'"EUR">0.00<', "entry 2: amount must be positive"),
        (b'<Amt Ccy="EUR">40.00</Amt>', b"", "entry 2: Amt is missing"),
        (b"<CdtDbtInd>DBIT</CdtDbtInd>", b"", "entry 1: CdtDbtInd is missing"),
        (b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>D</CdtDbtInd>", "entry 1: CdtDbtInd is D"),
        (b"<Sts>BOOK</Sts>", b"<Sts>PDNG</Sts>", "entry 1: status is PDNG"),
        (b"<BookgDt><Dt>2026-12-07</Dt></BookgDt>", b"", "entry 1: BookgDt is missing"),
        (b"<BookgDt><Dt>2026-12-07", b"<BookgDt><Dt>2026-13-07", "entry 1 BookgDt: '2026-13-07'"),
        (b"9915.25", b"9915.26", "Bal CLBD 9915.26 is not the opening balance plus the entries"),
        (b"<IBAN>DE89370400440532013000</IBAN></Id>", b"<Othr><Id>1</Id></Othr></Id>", "IBAN"),
        (b"</Stmt>", b"</Stmt><Stmt><Id>2</Id></Stmt>", "the file has 2 Stmt; one per file"),
        (b"<Stmt>", b"<Stmtx>", "the file has 0 Stmt"),
    ],
)
def test_read_camt053_refuses_a_broken_statement_naming_the_entry(
    old: bytes, new: bytes, message: str
) -> None:
    data = _camt(old, new)
    if old == b"<Stmt>":
        data = _camt(b"</Stmt>", b"</Stmtx>", data)
    with pytest.raises(BankFileError, match=message):
        read_camt053(data)


def test_a_camt_053_of_any_version_reads_the_same() -> None:
    for version in (b"03", b"04", b"08", b"13"):
        data = _camt(b"camt.053.001.02", b"camt.053.001." + version)
        assert read_camt053(data) == read_camt053(CAMT_053_001_02)


def test_without_acct_ccy_the_entries_currency_is_the_statements() -> None:
    assert read_camt053(_camt(b"<Ccy>EUR</Ccy>", b"")).currency == "EUR"


reasons = st.sampled_from(["", "AC04", "AM04", "MS03"])


@st.composite
def statements(draw: st.DrawFn) -> BankStatement:
    currency = draw(st.sampled_from(SOME_CURRENCIES))
    entries = draw(
        st.lists(
            st.builds(
                StatementEntry,
                amount=st.integers(1, MAX_AMOUNT),
                currency=st.just(currency),
                credit=st.booleans(),
                booked_on=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
                end_to_end_id=st.one_of(
                    st.just(""), st.from_regex(r"[a-z0-9_]{1,35}", fullmatch=True)
                ),
                reference=st.one_of(st.just(""), names),
                return_reason=reasons,
                entry_ref=st.one_of(st.just(""), st.from_regex(r"[A-Z0-9]{1,35}", fullmatch=True)),
            ),
            max_size=6,
        )
    )
    period = draw(st.one_of(st.none(), st.just((DAY, DAY + timedelta(days=6)))))
    return BankStatement(
        statement_id=draw(st.from_regex(r"[A-Za-z0-9-]{1,35}", fullmatch=True)),
        account_iban=draw(st.sampled_from(IBANS)),
        currency=currency,
        from_date=period[0] if period else None,
        to_date=period[1] if period else None,
        entries=tuple(entries),
        opening_balance=draw(st.one_of(st.none(), st.integers(-MAX_AMOUNT, MAX_AMOUNT))),
    )


@settings(max_examples=80, deadline=None)
@given(statements())
def test_any_statement_round_trips_through_camt053(statement: BankStatement) -> None:
    assert read_camt053(camt053(statement, created_at=NOW)) == statement


def test_camt053_writes_bank_transaction_codes_and_balances() -> None:
    statement = dataclasses.replace(
        execute_pain001(
            pain001(THREE), statement_id="S-1", booked_on=DAY, returns={"po_2": "AC04"}
        ),
        opening_balance=-500,
    )
    root = xml(camt053(statement, created_at=NOW))
    ns = {"c": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"}
    assert root.xpath("//c:SubFmlyCd/text()", namespaces=ns) == ["ESCT"] * 3 + ["RRTN"]
    assert root.xpath("//c:Fmly/c:Cd/text()", namespaces=ns) == ["ICDT"] * 4
    assert root.xpath("//c:RtrInf/c:Rsn/c:Cd/text()", namespaces=ns) == ["AC04"]
    assert root.xpath("//c:Bal/c:Amt/text()", namespaces=ns) == ["5.00", "1249.56"]
    assert root.xpath("//c:Bal/c:CdtDbtInd/text()", namespaces=ns) == ["DBIT", "DBIT"]
    assert root.xpath("//c:Ntry/c:Sts/c:Cd/text()", namespaces=ns) == ["BOOK"] * 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"from_date": None}, "both known or both None"),
        ({"statement_id": ""}, "statement_id is empty"),
        ({"currency": "XXX"}, "unknown currency"),
        ({"entries": (StatementEntry(0, "EUR", True, DAY),)}, "entry 1: amount 0"),
        ({"entries": (StatementEntry(1, "EUR", True, DAY, return_reason="x"),)}, "entry 1"),
    ],
)
def test_camt053_refuses_a_statement_it_cannot_write(
    changes: dict[str, object], message: str
) -> None:
    statement = BankStatement("S", IBANS[0], "EUR", DAY, DAY, ())
    with pytest.raises(BankFileError, match=message):
        camt053(dataclasses.replace(statement, **changes), created_at=NOW)
    with pytest.raises(BankFileError, match="aware"):
        camt053(statement, created_at=datetime(2026, 1, 1))


# --- statement CSV ----------------------------------------------------------------

CSV_HEADER = (
    "statement_id,account_iban,currency,booked_on,direction,amount,end_to_end_id,reference,"
    "return_reason\n"
)
CSV = CSV_HEADER + (
    "S-7,DE89370400440532013000,EUR,2026-12-07,DBIT,250.00,po_1,payout po_1,\n"
    'S-7,DE89370400440532013000,EUR,2026-12-08,CRDT,40,,"TOPUP tu_8f2k, acct_42",\n'
    "S-7,DE89370400440532013000,EUR,2026-12-08,CRDT,125.25,po_0,,AC04\n"
)


def test_a_blank_line_is_skipped_and_a_quoted_line_break_kept() -> None:
    data = CSV.replace("payout po_1", '"payout\u2028po_1\nline 2"') + "\n"
    entries = read_statement_csv(data.encode()).entries
    assert entries[0].reference == "payout\u2028po_1\nline 2"
    assert len(entries) == 3


def test_the_csv_layout_reads_with_a_bom() -> None:
    assert read_statement_csv(b"\xef\xbb\xbf" + CSV.encode()) == BankStatement(
        statement_id="S-7",
        account_iban="DE89370400440532013000",
        currency="EUR",
        from_date=DAY,
        to_date=DAY + timedelta(days=1),
        entries=(
            StatementEntry(25_000, "EUR", False, DAY, "po_1", "payout po_1"),
            StatementEntry(
                4_000, "EUR", True, DAY + timedelta(days=1), "", "TOPUP tu_8f2k, acct_42"
            ),
            StatementEntry(12_525, "EUR", True, DAY + timedelta(days=1), "po_0", "", "AC04"),
        ),
    )


def test_csv_amounts_use_the_currencys_exponent() -> None:
    row = "S,DE89370400440532013000,{},2026-12-07,CRDT,{},,,\n"
    for currency, amount, minor in [("JPY", "1000", 1000), ("BHD", "1.234", 1234)]:
        data = (CSV_HEADER + row.format(currency, amount)).encode()
        assert read_statement_csv(data).entries[0].amount == minor


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("statement_id,amount\n", "row 1: the header must be"),
        ("", "row 1: the header must be"),
        (CSV_HEADER, "no entry rows"),
        (CSV.replace("S-7,DE89", "S-8,DE89").replace("S-8", "S-7", 1), "row 3: statement_id 'S-8'"),
        (CSV.replace("EUR,2026-12-08,CRDT,40", "USD,2026-12-08,CRDT,40"), "row 3: currency 'USD'"),
        (CSV.replace("DBIT", "DEBIT"), "row 2: direction 'DEBIT'"),
        (CSV.replace("125.25", "125.255"), "row 4: amount 125.255 EUR has more decimals"),
        (CSV.replace("125.25", "1e3"), "row 4: amount '1e3' is not a decimal"),
        (CSV.replace("125.25", "0"), "row 4: amount must be positive"),
        (CSV.replace("2026-12-07", "07/12/2026"), "row 2: '07/12/2026' is not a date"),
        (CSV.replace(",AC04", ",closed"), "row 4: return_reason 'closed'"),
        (CSV.replace("payout po_1,", "payout po_1"), "row 2: 8 fields, not 9"),
        (CSV.replace("EUR", "XXX"), "row 2: unknown currency 'XXX'"),
        (CSV + 'S-7,"DE89\n', "row 5"),
    ],
)
def test_a_broken_csv_is_refused_naming_the_row(data: str, message: str) -> None:
    with pytest.raises(BankFileError, match=message):
        read_statement_csv(data.encode())


def test_a_csv_that_is_not_utf8_or_too_large_is_refused() -> None:
    with pytest.raises(BankFileError, match="not UTF-8"):
        read_statement_csv(CSV.replace("payout", "pay\xe9").encode("latin-1"))
    with pytest.raises(BankFileError, match="limit"):
        read_statement_csv(b"x" * (MAX_FILE_BYTES + 1))


# --- the simulated bank ---------------------------------------------------------


def test_the_bank_debits_each_transfer_and_books_the_returns_the_same_day() -> None:
    returns = {"po_3": "AM04", "po_1": "AC04"}
    statement = execute_pain001(pain001(THREE), statement_id="S-1", booked_on=DAY, returns=returns)
    assert (statement.statement_id, statement.account_iban, statement.currency) == (
        "S-1",
        DEBTOR.iban,
        "EUR",
    )
    assert (statement.from_date, statement.to_date) == (DAY, DAY)
    assert [
        (e.credit, e.amount, e.end_to_end_id, e.reference, e.return_reason, e.booked_on)
        for e in statement.entries
    ] == [
        (False, 1000, "po_1", "po_1", "", DAY),
        (False, 1, "po_2", "po_2", "", DAY),
        (False, 123456, "po_3", "po_3", "", DAY),
        (True, 123456, "po_3", "po_3", "AM04", DAY),
        (True, 1000, "po_1", "po_1", "AC04", DAY),
    ]
    assert len({e.entry_ref for e in statement.entries}) == 5
    assert read_camt053(camt053(statement, created_at=NOW)) == statement


CAMT_XSD = Path(__file__).parent / "data" / "camt.053.001.08.xsd"  # ISO 20022's, as published


@pytest.mark.parametrize("returns", [{}, {"po_2": "AC04"}])
def test_the_banks_statement_is_valid_against_the_official_camt_053_xsd(
    returns: dict[str, str],
) -> None:
    statement = execute_pain001(pain001(THREE), statement_id="S-1", booked_on=DAY, returns=returns)
    # It opened the day holding what the file pays: it closes with what came back.
    assert statement.opening_balance == 1000 + 1 + 123456
    assert statement.closing_balance == (1 if returns else 0)  # po_2 pays 0.01
    schema = xmlschema.XMLSchema(str(CAMT_XSD))
    schema.validate(camt053(statement, created_at=NOW).decode())


def test_the_bank_without_returns_only_debits() -> None:
    statement = execute_pain001(pain001(THREE), statement_id="S-1", booked_on=DAY)
    assert [e.credit for e in statement.entries] == [False, False, False]


def test_the_bank_refuses_a_return_of_a_transfer_it_was_not_sent() -> None:
    with pytest.raises(BankFileError, match="return of 'po_9': no such EndToEndId"):
        execute_pain001(pain001(THREE), statement_id="S", booked_on=DAY, returns={"po_9": "AC04"})
    with pytest.raises(BankFileError, match="'closed' is not a reason code"):
        execute_pain001(pain001(THREE), statement_id="S", booked_on=DAY, returns={"po_1": "closed"})


def test_the_bank_refuses_a_file_that_is_not_a_valid_pain001() -> None:
    with pytest.raises(BankFileError, match=r"not valid pain\.001\.001\.09"):
        execute_pain001(
            _edited(pain001(THREE), "//p:GrpHdr/p:MsgId", None), statement_id="S", booked_on=DAY
        )
