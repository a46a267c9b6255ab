"""nftables through libnftables (the library behind `nft`): a ruleset change is one in-process transaction,
with no `nft`/`iptables` process per rule. Falls back to the `nft` command where only it is installed."""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import threading


class NftablesError(RuntimeError):
    pass


class Nftables:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ctx = None
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            lib = None
        if lib is not None:
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            self._ctx = lib.nft_ctx_new(0)
            lib.nft_ctx_buffer_output(self._ctx)
            lib.nft_ctx_buffer_error(self._ctx)
        self._lib = lib
        self._command = None if lib is not None else shutil.which("nft")
        if lib is None and self._command is None:
            raise NftablesError("nftables is not available: install libnftables1 (or the nft command)")

    def run(self, commands: str) -> str:
        """Apply `commands` (nft syntax) as one transaction; returns what nft printed."""
        if self._lib is None:
            proc = subprocess.run(
                [self._command or "nft", "-f", "-"],
                input=commands,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if proc.returncode:
                raise NftablesError(_first_error(proc.stderr))
            return proc.stdout
        with self._lock:
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
            out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode(errors="replace")
            err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
        if rc:
            raise NftablesError(_first_error(err))
        return out


def _first_error(text: str) -> str:
    lines = [line for line in text.splitlines() if "Error:" in line]
    return (lines[0] if lines else text.strip().splitlines()[0] if text.strip() else "nft failed").strip()
