"""G.711 mu-law (PCMU) and A-law (PCMA) codecs, table driven and vectorised.

Pure: no I/O, no Twisted. Decoding is a 256-entry int16 lookup; encoding is a
65536-entry uint8 lookup indexed by the int16 sample's bit pattern, so both
directions are one ``numpy.take`` per frame. ``translate`` tables convert a
payload from one law to the other with ``bytes.translate`` (no numpy at all),
for relaying between legs that negotiated different codecs.

The tables are computed at import from the G.711 segment formulas.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CODECS",
    "PCMA_DECODE",
    "PCMA_ENCODE",
    "PCMU_DECODE",
    "PCMU_ENCODE",
    "SILENCE",
    "decode",
    "decode_into",
    "decode_table",
    "encode",
    "encode_table",
    "translate_table",
]

Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]

CODECS: Final = ("PCMU", "PCMA")

_ULAW_BIAS: Final = 0x84  # 132
_ULAW_CLIP: Final = 32635


def _build_ulaw_decode() -> Int16Array:
    code = np.arange(256, dtype=np.int32)
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    values = np.where(inverted & 0x80, -magnitude, magnitude)
    return values.astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    # In A-law the sign bit set means positive.
    values = np.where(code & 0x80, magnitude, -magnitude)
    return values.astype(np.int16)


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its uint16 bit pattern (index i -> int16(i))."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _bit_length(values: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Bit length of positive int32 values (vectorised ``int.bit_length``)."""
    length = np.zeros(values.shape, dtype=np.int32)
    remaining = values.copy()
    for shift in (16, 8, 4, 2, 1):
        big = remaining >= (1 << shift)
        length += np.where(big, shift, 0).astype(np.int32)
        remaining = np.where(big, remaining >> shift, remaining)
    return length + (remaining > 0).astype(np.int32)


def _build_ulaw_encode() -> UInt8Array:
    x = _all_int16()
    negative = x < 0
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS  # 132 .. 32767
    exponent = _bit_length(magnitude) - 8  # 0 .. 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code = (np.where(negative, 0x80, 0) | (exponent << 4) | mantissa) ^ 0xFF
    result: UInt8Array = code.astype(np.uint8)
    return result


def _build_alaw_encode() -> UInt8Array:
    x = _all_int16() >> 3  # 13-bit domain, arithmetic shift
    negative = x < 0
    magnitude = np.where(negative, -x - 1, x)  # 0 .. 4095
    # Segment 0 and 1 share the step (2 in the 13-bit domain); then doubling.
    segment = np.clip(_bit_length(magnitude) - 5, 0, 7)
    mantissa = np.where(segment < 2, magnitude >> 1, magnitude >> segment) & 0x0F
    code = (segment << 4) | mantissa
    sign_mask = np.where(negative, 0x55, 0xD5)
    result: UInt8Array = (code ^ sign_mask).astype(np.uint8)
    return result


PCMU_DECODE: Final[Int16Array] = _build_ulaw_decode()
PCMA_DECODE: Final[Int16Array] = _build_alaw_decode()
PCMU_ENCODE: Final[UInt8Array] = _build_ulaw_encode()
PCMA_ENCODE: Final[UInt8Array] = _build_alaw_encode()
for _table in (PCMU_DECODE, PCMA_DECODE, PCMU_ENCODE, PCMA_ENCODE):
    _table.setflags(write=False)

#: The byte that decodes to (near) zero: the idle pattern for each law.
SILENCE: Final = {"PCMU": 0xFF, "PCMA": 0xD5}

_TRANSLATE: Final = {
    ("PCMU", "PCMA"): PCMA_ENCODE[PCMU_DECODE.view(np.uint16)].tobytes(),
    ("PCMA", "PCMU"): PCMU_ENCODE[PCMA_DECODE.view(np.uint16)].tobytes(),
}


def decode_table(codec: str) -> Int16Array:
    """The 256-entry int16 decode table for ``codec`` ("PCMU" or "PCMA")."""
    if codec == "PCMU":
        return PCMU_DECODE
    if codec == "PCMA":
        return PCMA_DECODE
    raise ValueError(f"unsupported codec {codec!r}")


def encode_table(codec: str) -> UInt8Array:
    """The 65536-entry uint8 encode table for ``codec``, indexed by uint16 bit pattern."""
    if codec == "PCMU":
        return PCMU_ENCODE
    if codec == "PCMA":
        return PCMA_ENCODE
    raise ValueError(f"unsupported codec {codec!r}")


def translate_table(source: str, target: str) -> bytes | None:
    """A ``bytes.translate`` table from one law to another; None when they are equal."""
    if source == target:
        decode_table(source)  # validates the name
        return None
    try:
        return _TRANSLATE[(source, target)]
    except KeyError:
        raise ValueError(f"unsupported codec pair {source!r} -> {target!r}") from None


def decode(payload: bytes, codec: str) -> Int16Array:
    """Decode a G.711 payload into linear int16 samples (one per byte)."""
    return decode_table(codec)[np.frombuffer(payload, dtype=np.uint8)]


def decode_into(payload: bytes | memoryview, table: Int16Array, out: Int16Array) -> None:
    """Decode ``payload`` with ``table`` into ``out`` (same length), allocation-free."""
    np.take(table, np.frombuffer(payload, dtype=np.uint8), out=out)


def encode(samples: npt.NDArray[np.int16], codec: str) -> bytes:
    """Encode int16 samples into a G.711 payload (one byte per sample)."""
    array = np.asarray(samples)
    if array.dtype != np.int16:
        raise TypeError(f"expected int16 samples, got {array.dtype}")
    bits = np.ascontiguousarray(array).view(np.uint16)
    return encode_table(codec)[bits].tobytes()
