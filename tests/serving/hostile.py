"""Hypothesis strategies for the classes of hostile input that default fuzzing never generates (issue 15):
deep nesting, non-finite and overflowing numbers, invalid Unicode (lone surrogates, NUL), malformed image
URLs and oversized bodies. Shared by the property tests and the schemathesis run."""

from __future__ import annotations

import json

from hypothesis import strategies as st

# ---- deep nesting --------------------------------------------------------------------------------


@st.composite
def deep_json_text(draw, min_depth: int = 33, max_depth: int = 20_000) -> str:
    """A JSON text nested past the limit: arrays, objects or both, closed or left open, maybe inside a
    valid-looking request object."""
    # past the limit, and past what a recursive parser survives (Python's json: about 1,000 levels)
    depth = draw(st.one_of(st.sampled_from([1_500, 10_000, max_depth]), st.integers(min_depth, max_depth)))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"filters":', "}]")]))
    inner = draw(st.sampled_from(["", "1", '"x"', "null", "{}", "[]"]))
    if opener == "[" and inner == "":
        inner = "0"
    text = opener * depth + inner + closer * draw(st.sampled_from([depth, depth // 2, 0]))
    wrap = draw(st.sampled_from(["{}", '{{"text": "navy", "filters": {}}}', '{{"layers": {}}}', '{{"ratings": {}}}']))
    return wrap.format(text) if wrap != "{}" else text


def deep_value(depth: int):
    """A Python value nested ``depth`` levels (dicts and lists), for serialisers that build the text."""
    value: object = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


# ---- numbers -------------------------------------------------------------------------------------

NON_FINITE_TOKENS = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e309", "2e308")
non_finite_floats = st.sampled_from([float("nan"), float("inf"), float("-inf")])
huge_ints = st.one_of(st.integers(min_value=2**63 - 1, max_value=10**300), st.integers(max_value=-(2**63), min_value=-(10**300)))
number_tokens = st.one_of(
    st.sampled_from(NON_FINITE_TOKENS),
    huge_ints.map(str),
    st.integers(4300, 6000).map(lambda n: "9" * n),  # past Python's int-string digit limit
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
query_numbers = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-0", "0x10", "1_000", " 5", "5 ", "", "1e-400"]),
    number_tokens,
)

# ---- text ----------------------------------------------------------------------------------------

lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


@st.composite
def bad_text(draw) -> str:
    """Text with a lone surrogate or a NUL somewhere in it."""
    base = draw(st.text(max_size=30))
    bad = draw(st.one_of(lone_surrogates, st.just("\x00")))
    at = draw(st.integers(0, len(base)))
    return base[:at] + bad + base[at:]


unicode_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["e\u0301", "\u212b", "\ufb01", "\u0000", "\ufeff", "\u202e", "A" * 600, "\U0001f600" * 10]),
)

# ---- image URLs ----------------------------------------------------------------------------------

_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_BAD_HOSTS = st.one_of(
    st.sampled_from([
        "", ".", "..", "a..b", ".example", "example.", "-a.example", "a-.example", "[::1", "::1]", "[::1]]",
        "[fe80::1%25eth0]", "[v1.x]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "[::127.0.0.1]", "[ff02::1]", "224.0.0.1", "0", "127.1",
        "2130706433", "0x7f.1", "017700000001", "127.0.0.1.", "localhost", "xn--", "xn--a.example",
        "ex%00ample.com", "exa mple.com", "user@127.0.0.1", "a" * 64 + ".example", ("a" * 63 + ".") * 5 + "example",
        "\u0430pple.example", "ex\u200bample.com", "\udc00.example", "example.com\x00.evil",
    ]),  # fmt: skip
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
)
_BAD_PORTS = st.one_of(
    st.sampled_from(["", ":", ":0", ":65536", ":99999", ":-1", ":x", ":80:80", ":８０", ":1e3", ": 80"]),
    st.integers(65536, 10**30).map(lambda p: f":{p}"),
)


@st.composite
def hostile_urls(draw) -> str:
    scheme = draw(st.sampled_from(["http://", "https://", "HTTP://", "gopher://", "file://", "ftp://", "//", "http:/",
                                   "http:\\\\", "javascript:", "data:image/png;base64,", ""]))  # fmt: skip
    host = draw(_BAD_HOSTS)
    port = draw(_BAD_PORTS)
    path = draw(st.sampled_from(["/a.png", "", "/../../etc/passwd", "/%2e%2e/", "?x=1#f", "/a b.png", "/\x00.png"]))
    url = scheme + host + port + path
    return draw(st.sampled_from([url, url * 40, url.upper(), " " + url, url + "\n"]))


# ---- JSON values of any shape --------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_ints, st.floats(allow_nan=False, allow_infinity=False), unicode_text,
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(unicode_text, inner, max_size=4)),
                           max_leaves=12)  # fmt: skip
# a value for any field: well-typed, ill-typed, or one of the hostile classes; the first without NaN and
# the infinities, for clients (requests) that refuse to write them
strict_hostile_values = st.one_of(
    json_values, huge_ints, bad_text(), hostile_urls(), st.integers(1, 80).map(deep_value),
    st.lists(st.text(max_size=5), min_size=101, max_size=150),
)
hostile_values = st.one_of(strict_hostile_values, non_finite_floats)


def json_text(value) -> str:
    """JSON text for a Python value; NaN and the infinities written as Python's json writes them
    (``NaN``, ``Infinity``): tokens a client can send, which strict writers refuse to produce."""
    return json.dumps(value, allow_nan=True)
