"""The sealed recording format: round trip, tamper, truncation, reordering, wrong key."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ccswitch.recording import sealed
from ccswitch.recording.sealed import (
    HEADER_SIZE, TAG_SIZE, SealedError, SealedWriter, Status, Unsealed, repair_plan,
)

CHUNK = 64


def _seal(key: X25519PrivateKey, plain: bytes, *, finish: bool = True) -> bytes:
    writer = SealedWriter(key.public_key(), chunk_size=CHUNK)
    body = writer.header
    for i in range(0, len(plain), 50):
        body += writer.update(plain[i:i + 50])
    return body + writer.final() if finish else body


def _open(key: X25519PrivateKey, data: bytes, path: os.PathLike[str]) -> tuple[bytes, Status]:
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        opened = Unsealed(key, f)
        plain = b"".join(opened.chunks)
    assert opened.status is not None
    assert len(plain) == opened.layout.plaintext_bytes or opened.status is Status.TRUNCATED
    return plain, opened.status


@pytest.fixture
def key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.mark.parametrize("length", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 10 * CHUNK, 1000])
def test_round_trip(key: X25519PrivateKey, length: int, tmp_path: os.PathLike[str]) -> None:
    """What was sealed comes back whole, status complete, for any length."""
    plain = os.urandom(length)
    assert _open(key, _seal(key, plain), tmp_path / "f") == (plain, Status.COMPLETE)


def test_sealed_bytes_hide_the_plaintext(key: X25519PrivateKey) -> None:
    """A sealed WAV shows neither its RIFF header nor its content."""
    data = _seal(key, b"RIFF" + b"\0" * 1000)
    assert b"RIFF" not in data and data.count(b"\0" * 8) == 0


def test_each_file_gets_a_fresh_data_key(key: X25519PrivateKey) -> None:
    """The same plaintext sealed twice gives different bytes."""
    assert _seal(key, b"x" * 200)[HEADER_SIZE:] != _seal(key, b"x" * 200)[HEADER_SIZE:]


def test_changed_byte_is_detected(key: X25519PrivateKey, tmp_path: os.PathLike[str]) -> None:
    """A byte flipped inside a chunk makes that chunk refuse to decrypt."""
    data = bytearray(_seal(key, os.urandom(500)))
    data[HEADER_SIZE + CHUNK + TAG_SIZE + 3] ^= 1
    with pytest.raises(SealedError, match="chunk 1 does not authenticate"):
        _open(key, bytes(data), tmp_path / "f")


def test_changed_header_is_detected(key: X25519PrivateKey, tmp_path: os.PathLike[str]) -> None:
    """A flipped salt byte in the header breaks every chunk."""
    data = bytearray(_seal(key, os.urandom(500)))
    data[HEADER_SIZE - 1] ^= 1
    with pytest.raises(SealedError):
        _open(key, bytes(data), tmp_path / "f")


def test_reordered_chunks_are_detected(key: X25519PrivateKey,
                                       tmp_path: os.PathLike[str]) -> None:
    """Two whole chunks swapped do not decrypt."""
    data = _seal(key, os.urandom(500))
    record = CHUNK + TAG_SIZE
    first, second = (data[HEADER_SIZE:HEADER_SIZE + record],
                     data[HEADER_SIZE + record:HEADER_SIZE + 2 * record])
    swapped = data[:HEADER_SIZE] + second + first + data[HEADER_SIZE + 2 * record:]
    with pytest.raises(SealedError, match="chunk 0"):
        _open(key, swapped, tmp_path / "f")


def test_truncation_at_a_chunk_boundary_is_detected(key: X25519PrivateKey,
                                                    tmp_path: os.PathLike[str]) -> None:
    """A finished file cut after a whole chunk ends truncated, its prefix still readable."""
    plain = os.urandom(500)
    data = _seal(key, plain)[:HEADER_SIZE + 3 * (CHUNK + TAG_SIZE)]
    assert _open(key, data, tmp_path / "f") == (plain[:3 * CHUNK], Status.TRUNCATED)


def test_dropped_final_chunk_with_short_cut_is_detected(key: X25519PrivateKey,
                                                        tmp_path: os.PathLike[str]) -> None:
    """A file cut inside its last chunk is truncated, not complete."""
    plain = os.urandom(500)
    data = _seal(key, plain)[:-5]
    assert _open(key, data, tmp_path / "f")[1] is Status.TRUNCATED


def test_appended_chunk_is_detected(key: X25519PrivateKey, tmp_path: os.PathLike[str]) -> None:
    """Bytes after the final chunk do not pass as a complete file."""
    data = _seal(key, os.urandom(130))
    with pytest.raises(SealedError):
        _open(key, data + data[HEADER_SIZE:HEADER_SIZE + CHUNK + TAG_SIZE],
              tmp_path / "f")


def test_wrong_key_is_refused(key: X25519PrivateKey, tmp_path: os.PathLike[str]) -> None:
    """Another private key is refused with a clear message."""
    with pytest.raises(SealedError, match="another key"):
        _open(X25519PrivateKey.generate(), _seal(key, b"abc"), tmp_path / "f")


def test_not_a_sealed_file(key: X25519PrivateKey, tmp_path: os.PathLike[str]) -> None:
    """A plain WAV is refused as not sealed."""
    with pytest.raises(SealedError, match="not a sealed"):
        _open(key, b"RIFF" + bytes(100), tmp_path / "f")


def test_crash_prefix_decrypts(key: X25519PrivateKey, tmp_path: os.PathLike[str]) -> None:
    """What a writer had put out before a crash (no final) yields its whole chunks."""
    plain = os.urandom(1000)
    prefix = _seal(key, plain, finish=False)
    torn = prefix + os.urandom(20)  # half of the next chunk was being written
    got, status = _open(key, torn, tmp_path / "f")
    assert status is Status.TRUNCATED and got == plain[:len(got)] and len(got) >= 900


def test_repaired_prefix_reads_as_interrupted(key: X25519PrivateKey,
                                              tmp_path: os.PathLike[str]) -> None:
    """Recovery's plan (no key) cuts the torn chunk and adds a trailer: read as interrupted."""
    plain = os.urandom(1000)
    torn = _seal(key, plain, finish=False) + os.urandom(20)
    keep, trailer, chunks = repair_plan(torn[:HEADER_SIZE], len(torn), torn[-16:])
    repaired = torn[:keep] + trailer
    assert _open(key, repaired, tmp_path / "f") == (plain[:chunks * CHUNK], Status.INTERRUPTED)
    assert repair_plan(repaired[:HEADER_SIZE], len(repaired), repaired[-16:])[1] == b""


def test_key_files_round_trip() -> None:
    """keygen's PEM pair loads back, and a public key is not taken for a private one."""
    private_pem, public_pem = sealed.new_key_pair()
    private = sealed.load_private_key(private_pem)
    assert sealed.key_id(sealed.load_public_key(public_pem)) == sealed.key_id(
        private.public_key())
    with pytest.raises(SealedError):
        sealed.load_private_key(public_pem)


def test_bad_private_key_error_quotes_nothing() -> None:
    """A broken key file's error message does not contain its content."""
    with pytest.raises(SealedError) as e:
        sealed.load_private_key(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END")
    assert "c2VjcmV0" not in str(e.value)


def test_io_sealing_is_streamable(key: X25519PrivateKey) -> None:
    """The writer's output is only appended to: each update's bytes follow the last."""
    writer = SealedWriter(key.public_key(), chunk_size=CHUNK)
    out = io.BytesIO(writer.header)
    out.seek(0, 2)
    out.write(writer.update(b"a" * 200))
    out.write(writer.final())
    assert len(out.getvalue()) == HEADER_SIZE + 3 * (CHUNK + TAG_SIZE) + 8 + TAG_SIZE
