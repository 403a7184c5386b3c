"""Response bodies decompressed within a cap, so a decompression bomb cannot fill memory.

httpx decodes ``Content-Encoding`` a whole network chunk at a time: 64 KiB of gzip can
become 64 MiB before anyone counts it. Both crmpulse drivers read the raw bytes instead
and decode them here, asking each decoder for no more than the room left under the
cap; a body that would pass it is refused after at most cap + 1 bytes of output.

    decoder = BoundedDecoder("gzip", limit=16 * 1024 * 1024)
    body = decoder.feed(raw_chunk) + ... + decoder.flush()     # or BodyTooLarge
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["ACCEPT_ENCODING", "BadEncoding", "BodyTooLarge", "BoundedDecoder"]

try:  # brotli comes with Locust (geventhttpclient); its output can be bounded since 1.1
    import brotli as _brotli

    _brotli.Decompressor().process(b"", output_buffer_limit=1)
    _BROTLI: Any = _brotli
except (ImportError, TypeError, AttributeError):  # pragma: no cover - depends on the install
    _BROTLI = None

#: What crmpulse asks for: only encodings it can decode within a cap.
ACCEPT_ENCODING = "gzip, deflate" + (", br" if _BROTLI is not None else "")


class BodyTooLarge(Exception):
    """The decoded body would pass the cap."""


class BadEncoding(Exception):
    """An encoding crmpulse did not ask for, or a body that does not decode."""


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self.wbits = wbits
        self.decoder = zlib.decompressobj(wbits)
        self.started = False

    def decode(self, data: bytes, room: int) -> bytes:
        out = b""
        while True:
            if len(out) >= room:  # and max_length 0 would mean "no limit" to zlib
                raise BodyTooLarge
            try:
                chunk = self.decoder.decompress(data, room - len(out))
            except zlib.error:
                if self.wbits == zlib.MAX_WBITS and not self.started:  # "deflate" without header
                    self.wbits, self.decoder = -zlib.MAX_WBITS, zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise BadEncoding("the body does not decompress") from None
            self.started = True
            out += chunk
            if self.decoder.unconsumed_tail:
                raise BodyTooLarge
            if self.decoder.eof and self.decoder.unused_data and self.wbits > zlib.MAX_WBITS:
                data = self.decoder.unused_data  # another gzip member follows
                self.decoder = zlib.decompressobj(self.wbits)
                continue
            return out

    def flush(self, room: int) -> bytes:
        # nothing is left unconsumed (decode raised otherwise): what remains is under a window
        return self.decoder.flush()


class _Brotli:
    def __init__(self) -> None:
        self.decoder = _BROTLI.Decompressor()

    def decode(self, data: bytes, room: int) -> bytes:
        try:
            out: bytes = self.decoder.process(data, output_buffer_limit=room)
        except _BROTLI.error:
            raise BadEncoding("the body does not decompress") from None
        if len(out) >= room or not self.decoder.can_accept_more_data():
            raise BodyTooLarge
        return out

    def flush(self, room: int) -> bytes:
        return b""


class BoundedDecoder:
    """Decodes a body's Content-Encoding chain; raises BodyTooLarge past ``limit`` bytes."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self.limit = limit
        self.total = 0
        names = [e.strip().lower() for e in (content_encoding or "").split(",")]
        self.stages: list[_Zlib | _Brotli] = []
        for name in reversed([n for n in names if n and n != "identity"]):  # last applied first
            if name in ("gzip", "x-gzip"):
                self.stages.append(_Zlib(16 + zlib.MAX_WBITS))
            elif name == "deflate":
                self.stages.append(_Zlib(zlib.MAX_WBITS))
            elif name == "br" and _BROTLI is not None:
                self.stages.append(_Brotli())
            else:
                raise BadEncoding(f"Content-Encoding {name[:40]} was not asked for "
                                  f"(crmpulse accepts {ACCEPT_ENCODING})")

    def _room(self) -> int:
        return self.limit - self.total + 1

    def feed(self, data: bytes) -> bytes:
        for stage in self.stages:
            data = stage.decode(data, self._room())
        return self._count(data)

    def flush(self) -> bytes:
        data = b""
        for stage in self.stages:
            if data:
                data = stage.decode(data, self._room())
            data += stage.flush(self._room())
        return self._count(data)

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.limit:
            raise BodyTooLarge
        return data
