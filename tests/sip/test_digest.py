"""Unit tests for the SIP HTTP-Digest client (RFC 2617, RFC 7616, RFC 8760)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccswitch.errors import SipError
from ccswitch.sip.digest import (
    Challenge, DigestError, authorization, choose_challenge, parse_challenge,
)

RFC2617 = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC7616 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def h(name: str, data: str | bytes) -> str:
    """Reference hash, written out independently of the module under test."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.new(name, raw).hexdigest()


def params(header: str) -> dict[str, str]:
    """Split a rendered header (values without commas) into its parameters."""
    assert header.startswith("Digest ")
    pairs = (item.strip().split("=", 1) for item in header[len("Digest "):].split(","))
    return {k: v for k, v in pairs}


def sip_auth(challenge: Challenge, **kw: object) -> str:
    args: dict[str, object] = dict(
        method="INVITE", uri="sip:+15551234@trunk.example", username="alice",
        password="s3cret", cnonce="c0ffee",
    )
    args.update(kw)
    return authorization(challenge, **args)  # type: ignore[arg-type]


# RFC test vectors


def test_rfc2617_example_response() -> None:
    """The RFC 2617 s3.5 Mufasa example gives the published response."""
    header = authorization(
        parse_challenge(RFC2617), method="GET", uri="/dir/index.html",
        username="Mufasa", password="Circle Of Life", cnonce="0a4f113b",
    )
    assert params(header)["response"] == '"6629fae49393a05397450978507c4ef1"'


def test_rfc2617_example_header_rendering() -> None:
    """The header lists every directive in order, quoting only quoted-string ones."""
    header = authorization(
        parse_challenge(RFC2617), method="GET", uri="/dir/index.html",
        username="Mufasa", password="Circle Of Life", cnonce="0a4f113b",
    )
    assert header == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", '
        'qop=auth, nc=00000001, opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )


def test_rfc7616_md5_example() -> None:
    """The RFC 7616 s3.9.1 MD5 example gives the published response."""
    header = authorization(
        parse_challenge(RFC7616.format(alg="MD5")), method="GET", uri="/dir/index.html",
        username="Mufasa", password="Circle of Life", cnonce=RFC7616_CNONCE,
    )
    assert params(header)["response"] == '"8ca523f5e9506fed4657c9700eebdbec"'


def test_rfc7616_sha256_example() -> None:
    """The RFC 7616 s3.9.1 SHA-256 example gives the published response."""
    header = authorization(
        parse_challenge(RFC7616.format(alg="SHA-256")), method="GET", uri="/dir/index.html",
        username="Mufasa", password="Circle of Life", cnonce=RFC7616_CNONCE,
    )
    assert params(header)["response"] == (
        '"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"'
    )
    assert params(header)["algorithm"] == "SHA-256"


# Other algorithms


def test_sha512_256_response() -> None:
    """SHA-512-256 hashes A1, A2 and the response with SHA-512/256."""
    header = sip_auth(Challenge(realm="r", nonce="n", algorithm="SHA-512-256", qop=("auth",)))
    ha1 = h("sha512_256", "alice:r:s3cret")
    ha2 = h("sha512_256", "INVITE:sip:+15551234@trunk.example")
    expected = h("sha512_256", f"{ha1}:n:00000001:c0ffee:auth:{ha2}")
    assert params(header)["response"] == f'"{expected}"'
    assert params(header)["algorithm"] == "SHA-512-256"


def test_sess_algorithm_mixes_cnonce_into_ha1() -> None:
    """MD5-sess uses H(H(user:realm:pass):nonce:cnonce) as HA1."""
    header = sip_auth(Challenge(realm="r", nonce="n", algorithm="MD5-SESS", qop=("auth",)))
    ha1 = h("md5", f"{h('md5', 'alice:r:s3cret')}:n:c0ffee")
    ha2 = h("md5", "INVITE:sip:+15551234@trunk.example")
    assert params(header)["response"] == f'"{h("md5", f"{ha1}:n:00000001:c0ffee:auth:{ha2}")}"'


def test_sess_algorithm_rendered_in_rfc_spelling() -> None:
    """A -sess algorithm is echoed as e.g. SHA-256-sess."""
    header = sip_auth(Challenge(realm="r", nonce="n", algorithm="SHA-256-SESS", qop=("auth",)))
    assert params(header)["algorithm"] == "SHA-256-sess"


# Parsing


def test_parse_reads_all_fields() -> None:
    """A full challenge parses into a normalised Challenge."""
    assert parse_challenge(RFC7616.format(alg="SHA-256")) == Challenge(
        realm="http-auth@example.org", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        algorithm="SHA-256", qop=("auth", "auth-int"),
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", stale=False,
    )


def test_parse_defaults() -> None:
    """Without algorithm, qop, opaque or stale the defaults are MD5, (), None, False."""
    assert parse_challenge('Digest realm="r", nonce="n"') == Challenge(realm="r", nonce="n")


def test_parse_unescapes_quoted_strings() -> None:
    """Backslash escapes inside quoted strings are removed, commas kept."""
    challenge = parse_challenge(r'Digest realm="a \"b\", c\\d", nonce="n"')
    assert challenge.realm == 'a "b", c\\d'


def test_parse_tolerates_odd_spacing() -> None:
    """Tabs and spaces around the scheme, '=' and ',' are ignored."""
    challenge = parse_challenge('  Digest\t realm = "r" ,nonce=\t"n"  ,  qop = "auth"  ')
    assert (challenge.realm, challenge.nonce, challenge.qop) == ("r", "n", ("auth",))


def test_parse_tolerates_empty_list_elements() -> None:
    """Empty elements between commas (RFC 7230 s7) are skipped."""
    challenge = parse_challenge('Digest , realm="r",, nonce="n",')
    assert (challenge.realm, challenge.nonce) == ("r", "n")


def test_parse_uppercase_names_and_scheme() -> None:
    """Scheme and parameter names are case-insensitive."""
    challenge = parse_challenge('DIGEST REALM="r", Nonce="n", QOP="AUTH", OPAQUE="o"')
    assert (challenge.realm, challenge.nonce, challenge.qop, challenge.opaque) == (
        "r", "n", ("auth",), "o",
    )


def test_parse_unquoted_algorithm_normalised() -> None:
    """An unquoted lower-case algorithm token is normalised to upper case."""
    assert parse_challenge('Digest realm="r", nonce="n", algorithm=sha-256-sess, qop=auth'
                           ).algorithm == "SHA-256-SESS"


def test_parse_quoted_algorithm_accepted() -> None:
    """A (non-conformant) quoted algorithm value is accepted too."""
    assert parse_challenge('Digest realm="r", nonce="n", algorithm="SHA-512-256"'
                           ).algorithm == "SHA-512-256"


def test_parse_unquoted_token_values() -> None:
    """Unquoted nonce values with base64 characters are read as tokens."""
    assert parse_challenge('Digest realm="r", nonce=ab/c+d==').nonce == "ab/c+d=="


def test_parse_stale_true_any_case() -> None:
    """stale=TRUE (any case) sets stale."""
    assert parse_challenge('Digest realm="r", nonce="n", stale=TRUE').stale is True


def test_parse_stale_false() -> None:
    """stale=false leaves stale unset."""
    assert parse_challenge('Digest realm="r", nonce="n", stale=false').stale is False


def test_parse_drops_unknown_qop_values() -> None:
    """Unknown qop values are ignored and known ones lower-cased."""
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-conf, Auth-Int"')
    assert challenge.qop == ("auth-int",)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30))
def test_parse_quoted_realm_round_trips(realm: str) -> None:
    """Any realm escaped into a quoted string parses back unchanged."""
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    assert parse_challenge(f'Digest realm="{quoted}", nonce="n"').realm == realm


# Building the header


def test_qop_auth_preferred_over_auth_int() -> None:
    """When both are offered, qop=auth is used and the body is not hashed."""
    challenge = Challenge(realm="r", nonce="n", qop=("auth-int", "auth"))
    with_body = params(sip_auth(challenge, body=b"v=0\r\n"))
    assert with_body["qop"] == "auth"
    assert with_body == params(sip_auth(challenge, body=b""))


def test_auth_int_hashes_the_body() -> None:
    """With only auth-int offered, HA2 includes H(body)."""
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    header = params(sip_auth(Challenge(realm="r", nonce="n", qop=("auth-int",)), body=body))
    ha1 = h("md5", "alice:r:s3cret")
    ha2 = h("md5", f"INVITE:sip:+15551234@trunk.example:{h('md5', body)}")
    assert header["qop"] == "auth-int"
    assert header["response"] == f'"{h("md5", f"{ha1}:n:00000001:c0ffee:auth-int:{ha2}")}"'


def test_auth_int_response_depends_on_body() -> None:
    """Changing the body changes an auth-int response."""
    challenge = Challenge(realm="r", nonce="n", qop=("auth-int",))
    assert params(sip_auth(challenge, body=b"a"))["response"] != params(
        sip_auth(challenge, body=b"b"))["response"]


def test_rfc2069_mode_without_qop() -> None:
    """Without qop the response is H(HA1:nonce:HA2) and no cnonce, qop or nc is sent."""
    header = params(authorization(
        parse_challenge('Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'),
        method="GET", uri="/dir/index.html", username="Mufasa", password="CircleOfLife",
        cnonce="ignored",
    ))
    ha1 = h("md5", "Mufasa:testrealm@host.com:CircleOfLife")
    ha2 = h("md5", "GET:/dir/index.html")
    assert header["response"] == f'"{h("md5", f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}")}"'
    assert {"cnonce", "qop", "nc", "opaque"}.isdisjoint(header)


def test_nonce_count_is_eight_lowercase_hex_digits() -> None:
    """nc=255 is rendered as 000000ff and hashed as such."""
    header = params(sip_auth(Challenge(realm="r", nonce="n", qop=("auth",)), nc=255))
    ha1, ha2 = h("md5", "alice:r:s3cret"), h("md5", "INVITE:sip:+15551234@trunk.example")
    assert header["nc"] == "000000ff"
    assert header["response"] == f'"{h("md5", f"{ha1}:n:000000ff:c0ffee:auth:{ha2}")}"'


def test_quoted_values_are_escaped() -> None:
    """Quotes and backslashes in username and realm are escaped in the header."""
    header = sip_auth(Challenge(realm='r"\\', nonce="n"), username='a"b')
    assert 'username="a\\"b"' in header
    assert 'realm="r\\"\\\\"' in header


# Choosing among challenges (RFC 8760)


def test_choose_prefers_strongest_algorithm() -> None:
    """SHA-512-256 beats SHA-256 beats MD5 whatever the header order."""
    values = [f'Digest realm="r", nonce="{a}", algorithm={a}, qop="auth"'
              for a in ("MD5", "SHA-512-256", "SHA-256")]
    assert choose_challenge(values).algorithm == "SHA-512-256"
    assert choose_challenge(values[::2]).algorithm == "SHA-256"


def test_choose_ranks_sess_by_its_hash() -> None:
    """SHA-256-sess beats plain MD5."""
    values = ['Digest realm="r", nonce="a", algorithm=MD5',
              'Digest realm="r", nonce="b", algorithm=SHA-256-sess, qop=auth']
    assert choose_challenge(values).algorithm == "SHA-256-SESS"


def test_choose_keeps_server_order_on_ties() -> None:
    """Among equally strong challenges the first listed wins."""
    values = ['Digest realm="r", nonce="first"', 'Digest realm="r", nonce="second"']
    assert choose_challenge(values).nonce == "first"


def test_choose_skips_unusable_challenges() -> None:
    """Basic, unparseable and unsupported-algorithm challenges are skipped."""
    values = ['Basic realm="r"', 'Digest realm="r", nonce="x", algorithm=AKAv1-MD5',
              'Digest realm="r", nonce="x', 'Digest realm="r", nonce="ok"']
    assert choose_challenge(values).nonce == "ok"


# DigestError cases


def test_digest_error_is_a_401_sip_error() -> None:
    """DigestError is a SipError with status 401 and a stable error id."""
    error = DigestError("why")
    assert isinstance(error, SipError)
    assert (error.status, error.reason, error.error_id) == (401, "why", "sip.digest")


@pytest.mark.parametrize("value", ['Basic realm="r"', "", "   ", 'Digestrealm="r", nonce="n"'])
def test_parse_rejects_other_schemes(value: str) -> None:
    """A scheme other than Digest is rejected."""
    with pytest.raises(DigestError, match="scheme"):
        parse_challenge(value)


def test_parse_rejects_missing_realm() -> None:
    """A challenge without realm is rejected."""
    with pytest.raises(DigestError, match="realm"):
        parse_challenge('Digest nonce="n"')


def test_parse_rejects_missing_nonce() -> None:
    """A challenge without nonce is rejected."""
    with pytest.raises(DigestError, match="nonce"):
        parse_challenge('Digest realm="r"')


def test_parse_rejects_empty_nonce() -> None:
    """A challenge with an empty nonce is rejected."""
    with pytest.raises(DigestError, match="nonce"):
        parse_challenge('Digest realm="r", nonce=""')


@pytest.mark.parametrize("algorithm", ["AKAv1-MD5", "SHA-1", "SHA-384", "MD5-sess-x"])
def test_parse_rejects_unsupported_algorithm(algorithm: str) -> None:
    """An algorithm other than MD5, SHA-256, SHA-512-256 (and -sess) is rejected."""
    with pytest.raises(DigestError, match="algorithm"):
        parse_challenge(f'Digest realm="r", nonce="n", algorithm={algorithm}')


@pytest.mark.parametrize("value", [
    'Digest realm="r", nonce="n',            # unterminated quoted string
    'Digest realm="r" nonce="n"',            # missing comma
    'Digest realm="r", nonce',               # parameter without value
    'Digest realm="r", nonce=',              # empty unquoted value
    'Digest realm="r", ="n"',                # value without name
    'Digest realm="r", nonce="n"x',          # junk after quoted string
    'Digest realm="r", nonce="n", realm="s"',  # duplicate parameter
])
def test_parse_rejects_malformed_lists(value: str) -> None:
    """Malformed parameter lists are rejected."""
    with pytest.raises(DigestError, match="malformed|duplicate"):
        parse_challenge(value)


def test_parse_rejects_only_unknown_qop() -> None:
    """A qop list with no auth or auth-int is rejected."""
    with pytest.raises(DigestError, match="qop"):
        parse_challenge('Digest realm="r", nonce="n", qop="auth-conf"')


def test_parse_rejects_sess_without_qop() -> None:
    """A -sess algorithm without qop cannot be answered and is rejected."""
    with pytest.raises(DigestError, match="without qop"):
        parse_challenge('Digest realm="r", nonce="n", algorithm=MD5-sess')


def test_challenge_validates_when_built() -> None:
    """Building a Challenge directly with a bad algorithm raises DigestError."""
    with pytest.raises(DigestError, match="algorithm"):
        Challenge(realm="r", nonce="n", algorithm="md5")


def test_challenge_rejects_unknown_qop_when_built() -> None:
    """Building a Challenge directly with an unknown qop raises DigestError."""
    with pytest.raises(DigestError, match="qop"):
        Challenge(realm="r", nonce="n", qop=("auth-conf",))


@pytest.mark.parametrize("values", [[], ['Basic realm="r"', 'Digest realm="r"']])
def test_choose_rejects_when_none_usable(values: list[str]) -> None:
    """choose_challenge raises when no challenge is usable."""
    with pytest.raises(DigestError, match="no usable"):
        choose_challenge(values)


@pytest.mark.parametrize("nc", [0, -1, 2**32])
def test_authorization_rejects_out_of_range_nc(nc: int) -> None:
    """A nonce count outside 1..0xffffffff is rejected."""
    with pytest.raises(DigestError, match="nonce count"):
        sip_auth(Challenge(realm="r", nonce="n", qop=("auth",)), nc=nc)


def test_authorization_rejects_empty_cnonce_with_qop() -> None:
    """qop needs a cnonce; an empty one is rejected."""
    with pytest.raises(DigestError, match="cnonce"):
        sip_auth(Challenge(realm="r", nonce="n", qop=("auth",)), cnonce="")
