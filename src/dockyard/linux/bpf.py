"""The cgroup v2 device filter: a BPF_PROG_TYPE_CGROUP_DEVICE program, generated from device rules,
loaded with bpf(2) and attached to a cgroup directory. (v1 has devices.allow/deny files instead.)

The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` (access_type is
access << 16 | type) and checks the rules last to first: the last rule that matches decides, as writing
them one after the other into a v1 devices cgroup would; no match denies."""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2  # every program up the hierarchy must allow; lets systemd's and ours coexist

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# instruction encodings used here (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU32_MOV_X = 0xBC
_ALU64_MOV_K = 0xB7
_JMP_JNE_K = 0x55  # if dst != imm: pc += off
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


@dataclass(frozen=True)
class DeviceRule:
    allow: bool
    type: str = "a"  # a, c, b
    major: int | None = None  # None: any
    minor: int | None = None
    access: str = "rwm"


def device_filter(rules: list[DeviceRule]) -> bytes:
    """The program's instructions for `rules`."""
    # r2 = type, r3 = access, r4 = major, r5 = minor
    prog = [
        _insn(_LDX_MEM_W, 2, 1, 0),
        _insn(_ALU32_AND_K, 2, imm=0xFFFF),
        _insn(_LDX_MEM_W, 3, 1, 0),
        _insn(_ALU32_RSH_K, 3, imm=16),
        _insn(_LDX_MEM_W, 4, 1, 4),
        _insn(_LDX_MEM_W, 5, 1, 8),
    ]
    for rule in reversed(rules):
        # each test jumps past the rule's end when it does not match: offsets are filled in afterwards
        tests: list[tuple[int, int, int] | tuple[str, int]] = []
        if rule.type in ("c", "b"):
            tests.append((_JMP_JNE_K, 2, DEV_CHAR if rule.type == "c" else DEV_BLOCK))
        access = 0
        for letter in rule.access:
            access |= _ACCESS.get(letter, 0)
        if access != ACC_MKNOD | ACC_READ | ACC_WRITE:
            tests.append(("access", access))
        if rule.major is not None and rule.major >= 0:
            tests.append((_JMP_JNE_K, 4, rule.major))
        if rule.minor is not None and rule.minor >= 0:
            tests.append((_JMP_JNE_K, 5, rule.minor))
        block: list[tuple[int, int, int, bool]] = []  # (code, dst, imm, jumps to the end)
        for test in tests:
            if test[0] == "access":
                # the rule covers the request only if no requested bit is outside its access
                block.append((_ALU32_MOV_X, 1, 3, False))
                block.append((_ALU32_AND_K, 1, ~test[1] & 0xFFFF, False))
                block.append((_JMP_JNE_K, 1, 0, True))
            else:
                code, reg, imm = test  # type: ignore[misc]
                block.append((code, reg, imm, True))
        block.append((_ALU64_MOV_K, 0, int(rule.allow), False))
        block.append((_EXIT, 0, 0, False))
        for i, (code, dst, imm, jumps) in enumerate(block):
            if code == _ALU32_MOV_X:
                prog.append(_insn(code, dst, src=imm))
            elif jumps:
                prog.append(_insn(code, dst, off=len(block) - i - 1, imm=imm))
            else:
                prog.append(_insn(code, dst, imm=imm))
        if not tests:
            return b"".join(prog)  # a rule matching everything: what comes after it would be unreachable
    prog.append(_insn(_ALU64_MOV_K, 0, imm=0))
    prog.append(_insn(_EXIT))
    return b"".join(prog)


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    rc = _libc.syscall(_SYS_BPF[os.uname().machine], cmd, attr, ctypes.sizeof(attr))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return rc


def load_device_filter(program: bytes) -> int:
    """Load the program; its fd (close it once attached)."""
    insns = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = ctypes.create_string_buffer(128)
    # union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(program) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license),
        1,
        len(log),
        ctypes.addressof(log),
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(
            e.errno,
            f"loading the device filter: {os.strerror(e.errno or 0)}"
            + (f" ({'; '.join(detail)})" if detail else ""),
        ) from None


def attach_device_filter(cgroup_dir: str, prog_fd: int) -> None:
    dir_fd = os.open(cgroup_dir, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(128)
        # BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags
        struct.pack_into("<IIII", attr, 0, dir_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        _bpf(BPF_PROG_ATTACH, attr)
    finally:
        os.close(dir_fd)
