"""The serializer checked against node's `JSON.stringify(JSON.parse(text))`."""

import base64
import json
import math
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wp_llm import _jsjson
from wp_llm._jsjson import MAX_NESTING_DEPTH, dumps, parse
from wp_llm.catalog import EVENT_TYPES

NODE = shutil.which("node")
NODE_TIMEOUT_SECONDS = 60

requires_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

# Reads base64 lines so that any byte string survives the pipe unchanged.
ROUND_TRIP_SCRIPT = """
const input = require("fs").readFileSync(0, "utf8").split("\\n").filter(Boolean);
const output = input.map((line) => {
  const text = Buffer.from(line, "base64").toString("utf8");
  return Buffer.from(JSON.stringify(JSON.parse(text)), "utf8").toString("base64");
});
process.stdout.write(output.join("\\n"));
"""


def node_round_trip(texts: list[bytes]) -> list[bytes]:
    """Return `JSON.stringify(JSON.parse(text))` of each text, all from one node process."""
    assert NODE is not None
    lines = "\n".join(base64.b64encode(text).decode("ascii") for text in texts)
    completed = subprocess.run(
        [NODE, "-e", ROUND_TRIP_SCRIPT],
        input=lines,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
        check=True,
    )
    results = [base64.b64decode(line) for line in completed.stdout.split("\n") if line]
    assert len(results) == len(texts)
    return results


CASES: dict[str, str] = {
    "non-ASCII text": '"Grüße aus Köln, 東京, Ελληνικά"',
    "emoji": '"ship it 🚀 👍🏽 👨‍👩‍👧"',
    "escaped surrogate pair": r'"\ud83d\ude80"',
    "lone high surrogate": r'"a\ud800b"',
    "lone low surrogate": r'"\udfff"',
    "reversed surrogates": r'"\ude00\ud83d"',
    "surrogate in a key": r'{"\udc00":1}',
    "control characters": r'"\u0000\u0001\b\f\n\r\t\u000b\u001f\u007f"',
    "quote and backslash": r'"say \"hi\" to C:\\wp"',
    "escaped slash and letters": r'"a\/b \u0041\u00e9"',
    "line and paragraph separators": '"\u2028\u2029"',
    "integral float": "1.0",
    "float 1e16": "1e16",
    "float 1e20": "1e20",
    "float 1e21": "1e21",
    "float 1e-7": "1e-7",
    "float 0.000001": "0.000001",
    "float 1.5e-7": "1.5e-7",
    "smallest subnormal": "5e-324",
    "largest double": "1.7976931348623157e308",
    "negative zero float": "-0.0",
    "negative zero integer": "-0",
    "big integer": "12345678901234567890",
    "2**53 + 1": "9007199254740993",
    "negative big integer": "-98765432109876543210987",
    "huge integer": "1" + "0" * 308,
    "fractions": "[0.1, 0.5, 100.25, -2.5e-3, 123e-20, 1.2345678901234567e-5]",
    "exponent forms": "[1E2, 1e+2, 25e-1, 1.5e300, -1e21, 123456789012345678901]",
    "integer-like keys": (
        '{"b":0,"10":1,"2":2,"01":3,"-1":4,"4294967295":5,"4294967294":6,'
        '"1.5":7,"0":8,"a":9," 3":10,"1e3":11}'
    ),
    "nested structures": (
        '{"z":[1,{"3":null,"1":[true,false,{}]}],"a":{"x":1.50,"y":[[],[[-0.0]]]},"0":"first"}'
    ),
    "duplicate keys": '{"a":1,"b":2,"a":3}',
    "proto key": '{"__proto__":{"polluted":true},"constructor":1}',
    "whitespace between tokens": ' \n{ "a" :\t[ 1 , 2 ] }\r\n',
    "empty values": '[{}, [], "", 0, false, null]',
}
CASES.update({f"catalog {name}": json.dumps(t.example) for name, t in EVENT_TYPES.items()})


@pytest.fixture(scope="module")
def node_outputs() -> dict[str, bytes]:
    texts = list(CASES.values())
    return dict(zip(texts, node_round_trip([text.encode() for text in texts]), strict=True))


@requires_node
@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_dumps_matches_node(text: str, node_outputs: dict[str, bytes]) -> None:
    assert dumps(parse(text)) == node_outputs[text]


@requires_node
def test_dumps_output_is_node_fixed_point() -> None:
    ours = [dumps(parse(text)) for text in CASES.values()]
    assert node_round_trip(ours) == ours


def json_strings() -> st.SearchStrategy[str]:
    # Surrogates and control characters are rare in the default alphabet, so mix them in.
    alphabet = st.one_of(
        st.characters(),
        st.characters(max_codepoint=0x1F),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    )
    return st.text(alphabet=alphabet, max_size=8)


def json_keys() -> st.SearchStrategy[str]:
    return st.one_of(
        json_strings(),
        st.integers(min_value=0, max_value=2**33).map(str),
        st.sampled_from(["0", "01", "-1", "4294967294", "4294967295", "1.0"]),
    )


def json_values() -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        json_strings(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(json_keys(), children, max_size=5),
        ),
        max_leaves=20,
    )


@requires_node
def test_dumps_matches_node_on_generated_values() -> None:
    values: list[object] = []

    # Collect first and start node once, because one process per example is too slow.
    @settings(max_examples=300, deadline=None, database=None)
    @given(json_values())
    def collect(value: object) -> None:
        values.append(value)

    collect()
    sources = [json.dumps(value, allow_nan=False).encode() for value in values]
    ours = [dumps(value) for value in values]
    node_outputs = node_round_trip(sources + ours)
    from_sources, from_ours = node_outputs[: len(values)], node_outputs[len(values) :]

    differing = [
        (source, our, node)
        for source, our, node in zip(sources, ours, from_sources, strict=True)
        if our != node
    ]
    not_fixed = [our for our, node in zip(ours, from_ours, strict=True) if our != node]
    reparsed = [
        source for source, our in zip(sources, ours, strict=True) if dumps(parse(source)) != our
    ]
    assert differing == []
    assert not_fixed == []
    assert reparsed == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (1e16, b"10000000000000000"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
        (1.5e-7, b"1.5e-7"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e+308"),
        (123e-20, b"1.23e-18"),
        (0.1, b"0.1"),
        (-2.5, b"-2.5"),
        (100.25, b"100.25"),
        (123456789012345680000.0, b"123456789012345680000"),
        (12345678901234567890, b"12345678901234567000"),
        (2**53 + 1, b"9007199254740992"),  # rounds to the nearest even double
        (-(2**53), b"-9007199254740992"),
        (0, b"0"),
        (True, b"true"),
        (None, b"null"),
    ],
)
def test_dumps_formats_numbers_as_javascript(value: object, expected: bytes) -> None:
    assert dumps(value) == expected


def test_dumps_orders_array_index_keys_first() -> None:
    value = {"b": 1, "10": 2, "2": 3, "01": 4, "-1": 5, "4294967295": 6, "4294967294": 7, "0": 8}
    expected = b'{"0":8,"2":3,"10":2,"4294967294":7,"b":1,"01":4,"-1":5,"4294967295":6}'
    assert dumps(value) == expected


def test_dumps_keeps_insertion_order_without_index_keys() -> None:
    assert dumps({"z": 1, "a": 2, "$ref": 3, "": 4}) == b'{"z":1,"a":2,"$ref":3,"":4}'


def test_dumps_converts_non_string_keys_like_json() -> None:
    assert dumps({"x": 0, 2: "b", 1: "a", None: 3}) == b'{"1":"a","2":"b","x":0,"null":3}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\ud800", b'"\\ud800"'),
        ("a\udfffb", b'"a\\udfffb"'),
        ("\ud83d\ude80", '"🚀"'.encode()),  # a pair of code points joins into one character
        ("\x00\x1f\x7f", b'"\\u0000\\u001f\x7f"'),
        ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
        ('"\\/', b'"\\"\\\\/"'),
        ("é\u2028", '"é\u2028"'.encode()),
    ],
)
def test_dumps_escapes_strings_as_javascript(value: str, expected: bytes) -> None:
    assert dumps(value) == expected


def test_dumps_serializes_tuples_as_arrays() -> None:
    assert dumps({"a": (1, "x")}) == b'{"a":[1,"x"]}'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, {"a": math.inf}]])
def test_dumps_rejects_non_finite_numbers(value: object) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        dumps(value)


def test_dumps_rejects_integer_beyond_double_range() -> None:
    with pytest.raises(ValueError, match="out of the double range"):
        dumps([10**400])


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", {"a": [object()]}])
def test_dumps_rejects_unsupported_types(value: object) -> None:
    with pytest.raises(TypeError, match="unsupported type"):
        dumps(value)


def test_dumps_accepts_maximum_nesting_depth() -> None:
    value: object = 1
    for _ in range(MAX_NESTING_DEPTH):
        value = [value]
    assert dumps(value) == b"[" * MAX_NESTING_DEPTH + b"1" + b"]" * MAX_NESTING_DEPTH


def test_dumps_rejects_deeper_nesting() -> None:
    value: object = {}
    for _ in range(MAX_NESTING_DEPTH):
        value = {"a": value}
    with pytest.raises(ValueError, match="maximum depth"):
        dumps(value)


def test_parse_accepts_bytes_and_text() -> None:
    assert parse(b'{"a":"\xc3\xa9"}') == {"a": "é"}
    assert parse('{"a":"é"}') == {"a": "é"}


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"a":[1,NaN]}'])
def test_parse_rejects_non_finite_tokens(text: str) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        parse(text)


@pytest.mark.parametrize("text", ["1e400", "-1e400", "[1" + "0" * 309 + "]"])
def test_parse_rejects_numbers_beyond_double_range(text: str) -> None:
    with pytest.raises(ValueError, match="out of the double range"):
        parse(text)


def test_parse_accepts_largest_numbers_in_range() -> None:
    assert parse("1.7976931348623157e308") == 1.7976931348623157e308
    assert parse("9" * 308) == int("9" * 308)


def test_parse_rejects_invalid_utf8() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        parse(b'"\xff"')


def test_parse_rejects_byte_order_mark() -> None:
    # JSON.parse rejects a leading U+FEFF too, because it is not JSON whitespace.
    with pytest.raises(ValueError, match="BOM"):
        parse(b'\xef\xbb\xbf{"a":1}')


def test_parse_rejects_deep_nesting_cleanly() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse("[" * 100_000 + "]" * 100_000)


def test_jsjson_exports_sorted_all() -> None:
    assert _jsjson.__all__ == sorted(_jsjson.__all__)
