"""G.711 tables, encode/decode and law-to-law translation."""

from __future__ import annotations

import numpy as np
import pytest

from ccswitch.media import g711

ALL_INT16 = np.arange(65536, dtype=np.uint16).view(np.int16)


@pytest.mark.parametrize(("code", "value"), [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124),
                                             (0xFE, 8), (0x7E, -8), (0xEF, 132)])
def test_pcmu_decode_known_values(code: int, value: int) -> None:
    """PCMU decode table matches G.711 reference values."""
    assert g711.PCMU_DECODE[code] == value


@pytest.mark.parametrize(("code", "value"), [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256)])
def test_pcma_decode_known_values(code: int, value: int) -> None:
    """PCMA decode table matches G.711 reference values."""
    assert g711.PCMA_DECODE[code] == value


def test_tables_have_expected_shapes() -> None:
    """Decode tables are 256 int16 entries, encode tables 65536 uint8 entries."""
    assert g711.PCMU_DECODE.shape == (256,) and g711.PCMU_DECODE.dtype == np.int16
    assert g711.PCMA_DECODE.shape == (256,) and g711.PCMA_DECODE.dtype == np.int16
    assert g711.PCMU_ENCODE.shape == (65536,) and g711.PCMU_ENCODE.dtype == np.uint8
    assert g711.PCMA_ENCODE.shape == (65536,) and g711.PCMA_ENCODE.dtype == np.uint8


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_decoded_values_re_encode_to_same_value(codec: str) -> None:
    """Every decoded level encodes back to a code decoding to the same level."""
    levels = g711.decode_table(codec)
    again = g711.decode(g711.encode(levels.copy(), codec), codec)
    assert np.array_equal(again, levels)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_round_trip_error_is_bounded(codec: str) -> None:
    """Round-trip error is at most half a quantisation step: |err| <= 8 + |x|/32 (unclipped)."""
    x = ALL_INT16.astype(np.int64)
    y = g711.decode(g711.encode(ALL_INT16, codec), codec).astype(np.int64)
    unclipped = np.abs(x) <= 32000
    err = np.abs(y - x)[unclipped]
    assert (err <= 8 + np.abs(x[unclipped]) / 32 + 4).all()


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_encode_is_monotonic(codec: str) -> None:
    """Decoding the encoding of increasing samples never decreases."""
    ramp = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    y = g711.decode(g711.encode(ramp, codec), codec)
    assert (np.diff(y.astype(np.int32)) >= 0).all()


def test_silence_bytes_decode_near_zero() -> None:
    """The idle byte of each law decodes to within 8 of zero."""
    for codec, byte in g711.SILENCE.items():
        assert abs(int(g711.decode(bytes([byte]), codec)[0])) <= 8


def test_encode_rejects_non_int16() -> None:
    """Encoding float samples is a TypeError, not silent garbage."""
    with pytest.raises(TypeError):
        g711.encode(np.zeros(4, dtype=np.float32), "PCMU")


def test_unknown_codec_is_rejected() -> None:
    """An unknown codec name raises ValueError."""
    with pytest.raises(ValueError):
        g711.decode(b"\x00", "G729")


@pytest.mark.parametrize(("src", "dst"), [("PCMU", "PCMA"), ("PCMA", "PCMU")])
def test_translate_matches_decode_then_encode(src: str, dst: str) -> None:
    """bytes.translate between laws equals decoding and re-encoding."""
    table = g711.translate_table(src, dst)
    assert table is not None
    payload = bytes(range(256))
    assert payload.translate(table) == g711.encode(g711.decode(payload, src), dst)


def test_translate_same_law_is_none() -> None:
    """No translation table is needed between equal laws."""
    assert g711.translate_table("PCMU", "PCMU") is None
