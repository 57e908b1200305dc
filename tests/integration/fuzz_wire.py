"""Hand-built protobuf wire bytes and Hypothesis strategies for fuzzing LedgerServiceApi.

Requests are built as bytes, not through the generated classes, so a test can send what no stub
would: invalid UTF-8 in string fields, integers outside the field's type, overlong and
non-minimal varints, unknown fields, known field numbers with the wrong wire type, groups,
truncated messages, oversized strings and batches. Valid-looking values come from the seeded
state (``Seeds``: ids, keys and page tokens that exist on the server), so the fuzzer also walks
the happy paths and the state-dependent errors, not only parsing.

Big values (long strings, 1,000-item batches) are fixed byte strings picked with
``sampled_from``, never generated character by character, so examples stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from ledger import limits
from ledger.pb import ledger_api_pb2 as api

__all__ = [
    "BIG_STRINGS",
    "INVALID_UTF8",
    "METHODS",
    "Seeds",
    "key",
    "len_field",
    "raw_requests",
    "request_bytes",
    "varint",
    "varint_field",
]

MASK64 = 2**64 - 1
VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
FIELD_NUMBER_MAX = 2**29 - 1

SERVICE = api.DESCRIPTOR.services_by_name["LedgerServiceApi"]
# rpc name -> (request descriptor, response class)
METHODS: dict[str, tuple[Descriptor, type]] = {
    method.name: (method.input_type, getattr(api, method.output_type.name))
    for method in SERVICE.methods
}


# -- the wire format ---------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """Base-128 varint of a non-negative int of any size (above 64 bits it is overlong)."""
    assert value >= 0
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def key(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def varint_field(number: int, value: int) -> bytes:
    """A varint field; a negative value is sent as its 64-bit two's complement (10 bytes)."""
    return key(number, VARINT) + varint(value & MASK64 if value < 0 else value)


def len_field(number: int, payload: bytes) -> bytes:
    return key(number, LEN) + varint(len(payload)) + payload


# -- values ------------------------------------------------------------------------------------

INVALID_UTF8 = [
    b"\xff",
    b"\xc3",  # a lead byte without its continuation
    b"\x80abc",  # a lone continuation byte
    b"\xc0\xaf",  # overlong '/'
    b"\xed\xa0\x80",  # a UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"0123456789abcde\xff",  # 16 bytes that look almost like an account id
    b"\xfe" * 16,
]

_DESCRIPTION_MAX = limits.description_bytes_max
_KEY_MAX = limits.idempotency_key_bytes_max
# Strings at and just beyond the documented limits (in UTF-8 bytes, with 1-, 2- and 3-byte
# characters so that a byte limit counted in characters would show), and far beyond them.
BIG_STRINGS = [
    b"d" * _DESCRIPTION_MAX,
    b"d" * (_DESCRIPTION_MAX + 1),
    "é".encode() * (_DESCRIPTION_MAX // 2),  # exactly the limit in bytes
    "é".encode() * (_DESCRIPTION_MAX // 2 + 1),  # 2 bytes over, 513 characters
    "€".encode() * (_DESCRIPTION_MAX // 3 + 1),  # 1,026 bytes, 342 characters
    b"k" * _KEY_MAX,
    b"k" * (_KEY_MAX + 1),
    "é".encode() * (_KEY_MAX // 2),
    "é".encode() * (_KEY_MAX // 2 + 1),
    b"x" * 70_000,
    b"\x00" * 4_096,
    b"0123456789abcdef" * 4_096,  # 64 KiB of hex
]

INT64_EDGES = [
    0,
    1,
    -1,
    2,
    -2,
    100,
    -100,
    1000,
    -1000,
    limits.int64_max,
    limits.int64_max - 1,
    limits.int64_min,
    limits.int64_min + 1,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**32,
    2**53 + 1,
    -(2**53) - 1,
]
# Raw varint payloads outside int64 as the wire carries them: 2**63 .. 2**64-1 read as
# negative int64, and values of 65+ bits, which are not valid varints at all.
RAW_VARINTS = [2**63, 2**64 - 1, 2**64, 2**64 + 5, 2**70, 2**128]


def raw_varints() -> st.SearchStrategy[bytes]:
    """Varint payloads (without the key): edges, random 64-bit, overlong, non-minimal."""
    return st.one_of(
        st.sampled_from(INT64_EDGES).map(lambda v: varint(v & MASK64)),
        st.sampled_from(RAW_VARINTS).map(varint),
        st.integers(limits.int64_min, limits.int64_max).map(lambda v: varint(v & MASK64)),
        # Non-minimal encodings: valid protobuf, unusual bytes (0 as 0x80 0x80 0x00, ...).
        st.sampled_from(
            [
                b"\x80\x00",
                b"\x80\x80\x80\x00",
                b"\x81\x80\x80\x80\x00",
                b"\xff" * 9 + b"\x01",
                b"\xff" * 10 + b"\x01",
                b"\x80" * 11 + b"\x00",
                b"\x80",
                b"\xff\xff",
            ]
        ),  # the last two are cut off
    )


@dataclass
class Seeds:
    """What exists on the server under test: the fuzzer names these to reach deep paths."""

    account_ids: list[str]
    transaction_ids: list[str]  # existing ones (settled, pending, cancelled)
    idempotency_keys: list[str]  # keys already used on the seeded accounts
    page_tokens: list[str]  # valid tokens of the seeded accounts
    unknown_account_ids: list[str] = field(
        default_factory=lambda: [
            "0000000000000000",
            "ffffffffffffffff",
            "0123456789abcdef",
            "00000000000000ff",
        ]
    )


_BAD_ACCOUNT_IDS = [
    "",
    "0",
    "0123456789abcde",
    "0123456789abcdef0",
    "0123456789ABCDEF",
    "0123456789abcdeg",
    " 123456789abcdef",
    "0123456789abcde ",
    "0123456789abcdef\n",
    "0x23456789abcdef",
    "-123456789abcdef",
    "+123456789abcdef",
    "1_23456789abcdef",
    "０１２３４５６７８９ａｂｃｄｅｆ",  # full-width digits: int() would accept them
    "٠١٢٣٤٥٦٧٨٩abcdef",
    "0123456789abcde\x00",
    "00000000000000000000000000000000",
]


def _account_id_text(seeds: Seeds, sane: bool) -> st.SearchStrategy[str]:
    good = st.one_of(
        st.sampled_from(seeds.account_ids),
        st.sampled_from(seeds.account_ids),
        st.sampled_from(seeds.unknown_account_ids),
        st.integers(0, MASK64).map(lambda n: f"{n:016x}"),
    )
    if sane:
        return good
    return st.one_of(
        good,
        st.sampled_from(_BAD_ACCOUNT_IDS),
        st.from_regex(r"[0-9a-fA-F]{15,17}", fullmatch=True),
        st.text(max_size=40),
    )


def _transaction_id_text(seeds: Seeds, sane: bool) -> st.SearchStrategy[str]:
    numbers = st.one_of(
        st.sampled_from([0, 1, 2, 3, 4, 5, 1000, MASK64 - 1, MASK64]), st.integers(0, MASK64)
    )
    good = st.one_of(
        st.sampled_from(seeds.transaction_ids),
        st.sampled_from(seeds.transaction_ids),
        st.tuples(st.sampled_from(seeds.account_ids + seeds.unknown_account_ids), numbers).map(
            lambda pair: f"{pair[0]}{pair[1]:016x}"
        ),
    )
    if sane:
        return good
    return st.one_of(
        good,
        st.sampled_from(seeds.transaction_ids).map(str.upper),
        st.sampled_from(seeds.transaction_ids).map(lambda t: t[:-1]),
        st.sampled_from(seeds.transaction_ids).map(lambda t: t + "0"),
        st.sampled_from(seeds.account_ids),  # an account id where a transaction id belongs
        st.sampled_from(_BAD_ACCOUNT_IDS).map(lambda bad: bad * 2),
        st.text(max_size=40),
    )


def _page_token_text(seeds: Seeds, sane: bool) -> st.SearchStrategy[str]:
    good = st.one_of(st.just(""), st.sampled_from(seeds.page_tokens))
    if sane:
        return good
    return st.one_of(
        good,
        st.sampled_from(seeds.page_tokens).map(lambda t: t + "="),
        st.sampled_from(seeds.page_tokens).map(lambda t: t[:-1]),
        st.sampled_from(seeds.page_tokens).map(lambda t: t[:-1] + ("B" if t[-1] == "A" else "A")),
        st.sampled_from(
            [
                "A",
                "AAAA",
                "AQAAAAAAAAAAAAAAAAAAAAA",
                "AQ",
                "////",
                "-_-_",
                "A" * limits.page_token_chars_max,
                "A" * (limits.page_token_chars_max + 1),
                "é" * limits.page_token_chars_max,
                "\x00" * 24,
            ]
        ),
        st.from_regex(r"[A-Za-z0-9_\-]{20,28}", fullmatch=True),
        st.text(max_size=70),
    )


def _free_text(seeds: Seeds, sane: bool) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["", "", "a", "fuzz", *seeds.idempotency_keys]), st.text(max_size=30)
    )


_TEXTS: dict[str, Callable[[Seeds, bool], st.SearchStrategy[str]]] = {
    "account_id": _account_id_text,
    "transaction_id": _transaction_id_text,
    "page_token": _page_token_text,
}


def string_payloads(field_name: str, seeds: Seeds, sane: bool) -> st.SearchStrategy[bytes]:
    """UTF-8 payloads for a string field: meaningful text (and, unless ``sane``, wrong text,
    boundary and oversized sizes, invalid UTF-8)."""
    kind = next((k for k in _TEXTS if field_name.endswith(k)), "")
    if field_name.endswith("transfer_id"):  # a transfer's id is its debit transaction's id
        kind = "transaction_id"
    text = _TEXTS.get(kind, _free_text)(seeds, sane).map(str.encode)
    if sane:
        return text
    return st.one_of(text, text, text, st.sampled_from(INVALID_UTF8), st.sampled_from(BIG_STRINGS))


# Ordinary values of the integer fields: mostly valid, so that the state-dependent paths run.
_SANE_AMOUNTS = st.one_of(
    st.sampled_from([100, -10, 1, -1, 7, 1000, -1000]), st.integers(-10_000, 10_000)
)
_SANE_INTS = {
    "page_size": st.sampled_from([0, 1, 2, 3, 10, 100, 1000, 5000, -1]),
    "hold_timeout_ms": st.sampled_from([0, 0, 0, 0, 0, 1, 50, 60_000, -1]),
    "CreateTransferRequest.amount": st.one_of(
        st.sampled_from([7, 1, 100, 1000, 0, -7]), st.integers(1, 10_000)
    ),
}


def _scalar_field(
    descriptor: FieldDescriptor, seeds: Seeds, sane: bool
) -> st.SearchStrategy[bytes]:
    number = descriptor.number
    if descriptor.type == FieldDescriptor.TYPE_STRING:
        return string_payloads(descriptor.name, seeds, sane).map(lambda raw: len_field(number, raw))
    if descriptor.type == FieldDescriptor.TYPE_BOOL:
        values = [0, 1] if sane else [0, 1, 2, 255, MASK64]
        return st.sampled_from(values).map(lambda v: key(number, VARINT) + varint(v))
    assert descriptor.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32), descriptor
    if sane:
        name = f"{descriptor.containing_type.name}.{descriptor.name}"
        ordinary = _SANE_INTS.get(name, _SANE_INTS.get(descriptor.name, _SANE_AMOUNTS))
        if ordinary is _SANE_AMOUNTS:  # amounts: their edges are meaningful values too
            ordinary = st.one_of(ordinary, ordinary, st.sampled_from(INT64_EDGES))
        return ordinary.map(lambda v: varint_field(number, v))
    return raw_varints().map(lambda raw: key(number, VARINT) + raw)


def _wrong_wire_type(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """A known field number with a wire type that does not match its declared type."""
    numbers = [f.number for f in descriptor.fields] or [1]
    payloads = {
        VARINT: varint(1),
        FIXED64: b"\x01" * 8,
        LEN: varint(3) + b"abc",
        FIXED32: b"\x01" * 4,
        START_GROUP: key(1, VARINT) + varint(1),  # then the matching END_GROUP, or none
        END_GROUP: b"",
        6: b"",
        7: b"",  # wire types that do not exist
    }

    def build(choice: tuple[int, int, bool]) -> bytes:
        number, wire_type, close = choice
        encoded = key(number, wire_type) + payloads[wire_type]
        if wire_type == START_GROUP and close:
            encoded += key(number, END_GROUP)
        return encoded

    return st.tuples(
        st.sampled_from(numbers), st.sampled_from(sorted(payloads)), st.booleans()
    ).map(build)


def _unknown_field() -> st.SearchStrategy[bytes]:
    """A field number the message does not declare (some of them not valid numbers at all)."""
    numbers = st.one_of(
        st.integers(6, 200),
        st.sampled_from(
            [
                0,
                15,
                16,
                2047,
                2048,
                18_999,
                19_000,
                19_999,
                20_000,
                FIELD_NUMBER_MAX,
                FIELD_NUMBER_MAX + 1,
                2**32,
            ]
        ),
    )
    payloads = st.one_of(
        st.tuples(st.just(VARINT), raw_varints()),
        st.tuples(st.just(LEN), st.binary(max_size=40).map(lambda b: varint(len(b)) + b)),
        st.tuples(st.just(LEN), st.sampled_from([varint(10), varint(2**31), varint(2**64 - 1)])),
        st.tuples(st.just(FIXED64), st.binary(min_size=8, max_size=8)),
        st.tuples(st.just(FIXED32), st.binary(min_size=4, max_size=4)),
    )
    return st.tuples(numbers, payloads).map(lambda c: key(c[0], c[1][0]) + c[1][1])


def _items(descriptor: FieldDescriptor, seeds: Seeds, sane: bool) -> st.SearchStrategy[bytes]:
    """The repeated message field of a batch: few distinct items, or one item many times."""
    item = _body(descriptor.message_type, seeds, sane)
    number = descriptor.number
    few = st.lists(item, max_size=4).map(
        lambda items: b"".join(len_field(number, i) for i in items)
    )
    if sane:
        return few
    sizes = [
        limits.batch_items_max - 1,
        limits.batch_items_max,
        limits.batch_items_max + 1,
        2 * limits.batch_items_max,
    ]
    many = st.tuples(item, st.sampled_from(sizes)).map(lambda c: len_field(number, c[0]) * c[1])
    return st.one_of(few, few, few, many)


def _fields(descriptor: Descriptor, seeds: Seeds, sane: bool) -> list[st.SearchStrategy[bytes]]:
    return [
        _items(f, seeds, sane)
        if f.type == FieldDescriptor.TYPE_MESSAGE
        else _scalar_field(f, seeds, sane)
        for f in descriptor.fields
    ]


def _body(descriptor: Descriptor, seeds: Seeds, sane: bool) -> st.SearchStrategy[bytes]:
    """Every declared field once, in declaration order; unless ``sane``, also with fields
    missing, repeated or reordered, unknown fields and wrong wire types."""
    parts = _fields(descriptor, seeds, sane)
    typical = st.tuples(*parts).map(b"".join)
    if sane:
        return typical
    declared = st.one_of(*parts)
    odd = st.one_of(declared, declared, declared, _unknown_field(), _wrong_wire_type(descriptor))
    return st.one_of(
        typical,
        typical,
        st.tuples(typical, odd).map(b"".join),
        st.lists(odd, max_size=5).map(b"".join),
    )


def request_bytes(descriptor: Descriptor, seeds: Seeds) -> st.SearchStrategy[bytes]:
    """One request message of ``descriptor`` as bytes: well-formed with meaningful values
    (about half), malformed in its fields (about a third), or cut off, with junk appended or a
    byte flipped."""
    sane = _body(descriptor, seeds, sane=True)
    wild = _body(descriptor, seeds, sane=False)
    return st.one_of(sane, sane, sane, wild, wild, _mutated(st.one_of(sane, wild)))


@st.composite
def _mutated(draw: st.DrawFn, body: st.SearchStrategy[bytes]) -> bytes:
    """A message cut off, with junk appended, or with one byte flipped."""
    message = draw(body)
    how = draw(st.sampled_from(["cut", "append", "flip"]))
    if how == "cut" and message:
        return message[: draw(st.integers(0, len(message) - 1))]
    if how == "flip" and message:
        at = draw(st.integers(0, len(message) - 1))
        return message[:at] + bytes([message[at] ^ 0xFF]) + message[at + 1 :]
    return message + draw(st.binary(min_size=1, max_size=16))


def raw_requests() -> st.SearchStrategy[bytes]:
    """Random bytes as the whole request message."""
    return st.one_of(st.binary(max_size=64), st.binary(max_size=600))
