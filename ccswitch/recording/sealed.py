"""Sealed recordings: a file encrypted while it is written, in authenticated chunks,
readable only with the reviewers' X25519 private key. Pure: bytes in, bytes out.

File layout (version 1; integers big-endian)::

    header (68 bytes)
        magic         6  b"CCSREC"
        version       1  1
        key type      1  1 = X25519, HKDF-SHA256, AES-256-GCM
        chunk size    4  plaintext bytes per chunk (every chunk but the last is full)
        ephemeral     32 the writer's one-use X25519 public key
        key id        8  first 8 bytes of SHA-256 of the recipient's raw public key
        salt          16 random
    chunks
        AES-256-GCM ciphertext + 16-byte tag of each chunk; the nonce is the chunk
        counter (11 bytes) and a final flag (1 byte: 1 on the last chunk only), the
        associated data is the whole header. The last chunk holds fewer than chunk
        size bytes (possibly none), so a finished file always ends with a short chunk.
    trailer (only on a file repaired after a crash, 16 bytes)
        b"CCSRCUT\\0" and the number of whole chunks kept (8 bytes)

The data key is fresh per file: HKDF-SHA256 over the X25519 secret of the ephemeral key
and the recipient key (salt: the header's salt; info: a label, the ephemeral and the
recipient public key). The writer forgets the ephemeral private key at once, so the
node that writes recordings cannot read them back; only the private key can.

What a reader detects: a changed byte anywhere (header through the associated data,
chunks through their tags), chunks swapped, dropped or repeated (the counter is in the
nonce), a file cut short (no final chunk), chunks appended after the final one. A crash
leaves whole chunks followed by at most one torn chunk: those whole chunks still
decrypt. Recovery (``repair_plan``), which has no key, cuts the torn part and appends
the trailer; a reader then reports the file as interrupted. The trailer itself is not
authenticated (the node holds no key to do so): the ledger's SHA-256 of the repaired
file is what protects it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import struct
from typing import BinaryIO, Callable, Final, Iterator

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ccswitch.errors import RecordingError

__all__ = [
    "CHUNK_SIZE", "HEADER_SIZE", "MAGIC", "SUFFIX", "TAG_SIZE", "TRAILER_SIZE", "Header",
    "Layout", "SealedError", "SealedWriter", "Status", "Unsealed", "decrypt", "key_id",
    "layout", "load_private_key", "load_public_key", "new_key_pair", "read_header",
    "repair_plan", "trailer",
]

MAGIC: Final = b"CCSREC"
VERSION: Final = 1
KEY_X25519: Final = 1
SUFFIX: Final = ".enc"
#: 16 KiB is about half a second of 8 kHz 16-bit stereo: what a crash can lose at most.
CHUNK_SIZE: Final = 16384
TAG_SIZE: Final = 16
HEADER_SIZE: Final = 68
TRAILER_MAGIC: Final = b"CCSRCUT\x00"
TRAILER_SIZE: Final = 16
_HEADER: Final = struct.Struct(">6sBBI32s8s16s")
_INFO: Final = b"ccswitch sealed recording v1"
_MAX_CHUNK: Final = 1 << 24


class SealedError(RecordingError):
    """A sealed file cannot be read: not one, wrong key, or changed."""

    error_id = "recording.sealed"


class Status(enum.Enum):
    """How a sealed file ends."""

    COMPLETE = "complete"  # with its authenticated final chunk
    INTERRUPTED = "interrupted"  # repaired after a crash: whole chunks and the trailer
    TRUNCATED = "truncated"  # neither: cut short, torn, or its end changed


def key_id(public_key: X25519PublicKey) -> bytes:
    """The 8 bytes that name a recipient key in a header (lets a reader say "wrong key")."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8]


def _data_key(secret: bytes, salt: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=_INFO + ephemeral + recipient).derive(secret)


def _nonce(counter: int, final: bool) -> bytes:
    if counter >= 1 << 88:
        raise SealedError("too many chunks")
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


class SealedWriter:
    """Encrypts one file: ``header`` first, then what ``update`` and ``final`` return."""

    def __init__(self, recipient: X25519PublicKey, *, chunk_size: int = CHUNK_SIZE,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        if not 0 < chunk_size <= _MAX_CHUNK:
            raise ValueError(f"chunk size must be 1..{_MAX_CHUNK}, got {chunk_size}")
        ephemeral = X25519PrivateKey.from_private_bytes(random(32))
        ephemeral_raw = ephemeral.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        recipient_raw = recipient.public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        salt = random(16)
        self.header: Final = _HEADER.pack(MAGIC, VERSION, KEY_X25519, chunk_size,
                                          ephemeral_raw, key_id(recipient), salt)
        self._aead = AESGCM(_data_key(ephemeral.exchange(recipient), salt, ephemeral_raw,
                                      recipient_raw))
        self._chunk = chunk_size
        self._pending = bytearray()
        self._counter = 0
        self._done = False
        self.plaintext_bytes = 0

    def update(self, data: bytes | memoryview) -> bytes:
        """Ciphertext of the chunks ``data`` completes (possibly none)."""
        if self._done:
            raise SealedError("sealed file already finished")
        self._pending += data
        self.plaintext_bytes += len(data)
        out = bytearray()
        # Full chunks go out only once more data follows them: the final chunk is short.
        while len(self._pending) > self._chunk:
            out += self._seal(bytes(self._pending[:self._chunk]), False)
            del self._pending[:self._chunk]
        return bytes(out)

    def final(self) -> bytes:
        """The rest, as the final chunks; call once."""
        if self._done:
            raise SealedError("sealed file already finished")
        self._done = True
        out = b""
        if len(self._pending) == self._chunk:
            out = self._seal(bytes(self._pending), False)
            self._pending.clear()
        return out + self._seal(bytes(self._pending), True)

    def _seal(self, plain: bytes, final: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._counter, final), plain, self.header)
        self._counter += 1
        return sealed


@attrs.frozen(kw_only=True)
class Header:
    chunk_size: int
    ephemeral: bytes
    key_id: bytes
    salt: bytes
    raw: bytes


def read_header(data: bytes) -> Header:
    """The header at the start of ``data``; SealedError if it is not a sealed file."""
    if len(data) < HEADER_SIZE or data[:6] != MAGIC:
        raise SealedError("not a sealed ccswitch recording")
    magic, version, kind, chunk, ephemeral, kid, salt = _HEADER.unpack(data[:HEADER_SIZE])
    if version != VERSION or kind != KEY_X25519:
        raise SealedError(f"unsupported sealed file version {version}, key type {kind}")
    if not 0 < chunk <= _MAX_CHUNK:
        raise SealedError(f"bad chunk size {chunk}")
    return Header(chunk_size=chunk, ephemeral=ephemeral, key_id=kid, salt=salt,
                  raw=bytes(data[:HEADER_SIZE]))


def trailer(chunks: int) -> bytes:
    return TRAILER_MAGIC + chunks.to_bytes(8, "big")


@attrs.frozen(kw_only=True)
class Layout:
    """What a file of a given size holds, judged by sizes alone (nothing authenticated).

    ``chunks`` whole records come first; ``last`` is the length of the record after them
    that should be the final chunk (0 if none), ``plaintext_bytes`` what they decrypt to
    when authentic, ``status`` what the end looks like."""

    chunks: int
    last: int
    plaintext_bytes: int
    status: Status


def layout(header: Header, size: int, tail: bytes) -> Layout:
    """The layout of a sealed file of ``size`` bytes whose last 16 bytes are ``tail``."""
    body = size - HEADER_SIZE
    record = header.chunk_size + TAG_SIZE
    if body >= TRAILER_SIZE and tail[:8] == TRAILER_MAGIC:
        kept = int.from_bytes(tail[8:16], "big")
        if kept * record == body - TRAILER_SIZE:
            return Layout(chunks=kept, last=0, plaintext_bytes=kept * header.chunk_size,
                          status=Status.INTERRUPTED)
    whole, rest = divmod(max(body, 0), record)
    if rest >= TAG_SIZE:
        return Layout(chunks=whole, last=rest,
                      plaintext_bytes=whole * header.chunk_size + rest - TAG_SIZE,
                      status=Status.COMPLETE)
    return Layout(chunks=whole, last=0, plaintext_bytes=whole * header.chunk_size,
                  status=Status.TRUNCATED)


def repair_plan(data_head: bytes, size: int, tail: bytes) -> tuple[int, bytes, int]:
    """For recovery, without any key: (bytes to keep, trailer to append, whole chunks).

    A file that ends like a finished one is kept as it is (empty trailer)."""
    header = read_header(data_head)
    found = layout(header, size, tail)
    if found.status is Status.INTERRUPTED:
        return size, b"", found.chunks
    whole = (size - HEADER_SIZE) // (header.chunk_size + TAG_SIZE)
    # A crash can stop in the middle of a chunk: only whole chunks are kept.
    keep = HEADER_SIZE + whole * (header.chunk_size + TAG_SIZE)
    return keep, trailer(whole), whole


def decrypt(private_key: X25519PrivateKey, read: Callable[[int], bytes], size: int,
            tail: bytes, done: Callable[[Status], None]) -> Iterator[bytes]:
    """Plaintext chunks of a sealed file read sequentially through ``read``.

    ``size`` is the file's size and ``tail`` its last 16 bytes (from which its layout is
    known before reading). Raises SealedError at the first chunk that does not
    authenticate (after yielding every one before it), for a wrong key or a file that is
    not sealed. When the chunks are all out, ``done`` gets the status: a file without its
    final chunk yields its whole authentic chunks and ends TRUNCATED.
    """
    header = read_header(read(HEADER_SIZE))
    recipient = private_key.public_key()
    if not hmac.compare_digest(header.key_id, key_id(recipient)):
        raise SealedError("this recording was sealed to another key")
    recipient_raw = recipient.public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    peer = X25519PublicKey.from_public_bytes(header.ephemeral)
    aead = AESGCM(_data_key(private_key.exchange(peer), header.salt, header.ephemeral,
                            recipient_raw))
    found = layout(header, size, tail)
    record = header.chunk_size + TAG_SIZE
    for counter in range(found.chunks):
        yield _open(aead, read(record), counter, False, header)
    status = found.status
    if found.last:
        try:
            yield _open(aead, read(found.last), found.chunks, True, header)
        except SealedError:
            status = Status.TRUNCATED  # a torn chunk after a crash, or a changed end
    done(status)


class Unsealed:
    """A sealed file open for reading: ``layout`` at once, ``chunks`` as they are read,
    ``status`` once they are all out (None before)."""

    def __init__(self, private_key: X25519PrivateKey, f: BinaryIO) -> None:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(size - TRAILER_SIZE, 0))
        tail = f.read(TRAILER_SIZE)
        f.seek(0)
        self.layout = layout(read_header(f.read(HEADER_SIZE)), size, tail)
        f.seek(0)
        self.status: Status | None = None
        self.chunks = decrypt(private_key, f.read, size, tail, self._done)

    def _done(self, status: Status) -> None:
        self.status = status


def _open(aead: AESGCM, sealed: bytes, counter: int, final: bool, header: Header) -> bytes:
    try:
        return aead.decrypt(_nonce(counter, final), sealed, header.raw)
    except InvalidTag:
        raise SealedError(f"chunk {counter} does not authenticate: the file was changed "
                          "or its chunks moved") from None


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh key pair as (private PEM, public PEM)."""
    private = X25519PrivateKey.generate()
    return (private.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            private.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def load_public_key(pem: bytes) -> X25519PublicKey:
    """An X25519 public key from PEM; SealedError for anything else."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise SealedError(f"not a PEM public key: {e}") from None
    if not isinstance(key, X25519PublicKey):
        raise SealedError("the public key is not an X25519 key")
    return key


def load_private_key(pem: bytes) -> X25519PrivateKey:
    """An X25519 private key from PEM; SealedError for anything else (the message never
    quotes the key)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise SealedError("not an unencrypted PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise SealedError("the private key is not an X25519 key")
    return key
