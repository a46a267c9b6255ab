"""Detach keys, as Docker has them: the key sequence that ends an attach to a terminal (ctrl-p,ctrl-q by
default) while the container or exec'd process runs on. Pure and light to import: the daemon watches a
hijacked stream's input for them, the CLI its terminal's.

The spec is moby/term's: comma-separated keys, each one byte as typed (`a`, `,` cannot be one), `ctrl-@`,
`ctrl-a` ... `ctrl-z`, `ctrl-[`, `ctrl-\\`, `ctrl-]`, `ctrl-^`, `ctrl-_` (lower case, as written) or `DEL`.
"""

from __future__ import annotations

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

_CONTROLS = {f"ctrl-{ch}": code for code, ch in enumerate("@abcdefghijklmnopqrstuvwxyz[\\]^_")}
_CONTROLS["DEL"] = 127


def to_bytes(spec: str) -> bytes:
    """The bytes of a key spec; ValueError("Unknown character: 'x'") as moby/term's ToBytes."""
    out = bytearray()
    for key in spec.split(","):
        raw = key.encode()
        if len(raw) == 1:
            out += raw
        elif key in _CONTROLS:
            out.append(_CONTROLS[key])
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


class EscapeScanner:
    """The input of an attach with a terminal, watched for the detach keys as moby/term's escape proxy
    does it: bytes that may begin the sequence are held back until it is complete (then they are dropped,
    and the attach ends) or broken (then they are passed on, followed by what broke it)."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.matched = 0  # how much of the sequence the last bytes were

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to pass on, whether the whole sequence has now been typed). Bytes after it are dropped."""
        keys = self.keys
        if not keys or (not self.matched and keys[0] not in data):
            return data, False
        out = bytearray()
        pos = 0
        while pos < len(data):
            if not self.matched:  # copy up to the next byte that may begin the sequence
                nxt = data.find(keys[0], pos)
                if nxt < 0:
                    out += data[pos:]
                    break
                out += data[pos:nxt]
                pos = nxt
            byte = data[pos]
            pos += 1
            if byte == keys[self.matched]:
                self.matched += 1
                if self.matched == len(keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            out += keys[: self.matched]  # a partial sequence was input after all
            out.append(byte)
            self.matched = 0
        return bytes(out), False

    def flush(self) -> bytes:
        """At the end of the input: what was held back."""
        held, self.matched = self.keys[: self.matched], 0
        return held
