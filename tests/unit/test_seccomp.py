"""Seccomp: the default profile resolved for a capability set (as dockerd writes it into the spec), the
spec's choice of profile, the OCI object compiled into libseccomp rules, and a filter loaded for real in a
forked child (no root needed: the child sets no_new_privs first)."""

from __future__ import annotations

import ctypes
import errno
import json
import os

import pytest

from dockyard.linux import seccomp
from dockyard.runtime.seccomp_profile import (
    CLONE_NAMESPACE_FLAGS,
    ProfileError,
    default_profile,
    load_profile,
    setup_seccomp,
)
from dockyard.runtime.spec import DEFAULT_CAPABILITIES, ContainerOptions, SpecError, build_spec

DEFAULT = list(DEFAULT_CAPABILITIES)


def resolved(caps=DEFAULT, arch="amd64", kernel=(6, 1), profile=None):
    profile = default_profile() if profile is None else profile
    return setup_seccomp(profile, caps, arch=arch, kernel=kernel)


def allowed(s) -> set[str]:
    """Names allowed without any argument condition."""
    return {n for e in s["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" and not e["args"] for n in e["names"]}


def entries_for(s, name: str) -> list[dict]:
    return [e for e in s["syscalls"] if name in e["names"]]


# --- the default profile -----------------------------------------------------------------------------


def test_default_profile_shape():
    s = resolved()
    assert s["defaultAction"] == "SCMP_ACT_ERRNO"
    assert s["defaultErrnoRet"] == errno.EPERM
    assert s["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(s)
    for ordinary in (
        "read",
        "write",
        "openat",
        "execve",
        "mmap",
        "futex",
        "socket",
        "mkdirat",
        "wait4",
        "chown",
    ):
        assert ordinary in names
    blocked_ones = """mount umount2 unshare setns keyctl add_key kexec_load reboot init_module settimeofday
        clock_settime acct iopl swapon pivot_root userfaultfd open_by_handle_at bpf perf_event_open kcmp
        io_uring_setup""".split()
    for blocked in blocked_ones:
        assert blocked not in names, blocked
    # chroot comes with CAP_SYS_CHROOT, which Docker's default set has
    assert "chroot" in names
    assert "arch_prctl" in names and "arm_fadvise64_64" not in names


def test_arm64_gets_its_own_arch_and_syscalls():
    s = resolved(arch="arm64")
    assert s["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arm_fadvise64_64" in allowed(s) and "arch_prctl" not in allowed(s)


@pytest.mark.parametrize(
    "cap, syscalls",
    [
        ("CAP_SYS_ADMIN", ["mount", "umount2", "unshare", "setns", "sethostname", "clone3"]),
        ("CAP_SYS_BOOT", ["reboot"]),
        ("CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
        ("CAP_SYS_TIME", ["settimeofday", "clock_settime", "clock_adjtime"]),
        ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd"]),
        ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
        ("CAP_SYS_NICE", ["mbind", "set_mempolicy", "get_mempolicy"]),
        ("CAP_SYS_PACCT", ["acct"]),
        ("CAP_SYSLOG", ["syslog"]),
        ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
        ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
        ("CAP_BPF", ["bpf"]),
        ("CAP_PERFMON", ["perf_event_open"]),
    ],
)
def test_capability_gated_syscalls(cap, syscalls):
    without = allowed(resolved())
    with_cap = allowed(resolved(DEFAULT + [cap]))
    for name in syscalls:
        assert name not in without, name
        assert name in with_cap, name
    # nothing else changes: the default set's entries stay
    assert without <= with_cap


def test_chroot_goes_with_cap_sys_chroot():
    assert "chroot" not in allowed(resolved([c for c in DEFAULT if c != "CAP_SYS_CHROOT"]))


def test_clone_without_namespace_flags_unless_cap_sys_admin():
    rules = entries_for(resolved(), "clone")
    assert rules == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    assert CLONE_NAMESPACE_FLAGS == 0x7E020000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
    clone3 = entries_for(resolved(), "clone3")
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS, "args": []}]
    admin = resolved(DEFAULT + ["CAP_SYS_ADMIN"])
    assert "clone" in allowed(admin) and "clone3" in allowed(admin)
    assert all(not e["args"] for e in entries_for(admin, "clone"))
    assert not [e for e in admin["syscalls"] if e["action"] != "SCMP_ACT_ALLOW"]
    # s390 has clone's flags in the second argument
    s390 = entries_for(resolved(arch="s390x"), "clone")
    assert [a["index"] for e in s390 for a in e["args"]] == [1]


def test_personality_is_limited():
    [rule] = entries_for(resolved(), "personality")
    assert {a["value"] for a in rule["args"]} == {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}
    assert {(a["index"], a["op"]) for a in rule["args"]} == {(0, "SCMP_CMP_EQ")}


def test_ptrace_from_kernel_4_8():
    assert "ptrace" in allowed(resolved(kernel=(4, 8)))
    assert "ptrace" not in allowed(resolved(kernel=(4, 4)))
    assert "ptrace" in allowed(resolved(DEFAULT + ["CAP_SYS_PTRACE"], kernel=(4, 4)))


# --- Docker-format profiles --------------------------------------------------------------------------


def test_includes_and_excludes():
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"name": "a", "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_X", "CAP_Y"]}},
            {"names": ["b"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_X"]}},
            {"names": ["c"], "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["arm64"]}},
            {"names": ["d"], "action": "SCMP_ACT_ERRNO", "excludes": {"arches": ["arm64"]}},
            {"names": ["e"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "excludes": {"minKernel": "5.10"}},
        ],
    }
    names = lambda s: [e["names"][0] for e in s["syscalls"]]  # noqa: E731
    assert names(resolved(["CAP_X"], profile=profile)) == ["d"]
    assert names(resolved(["CAP_X", "CAP_Y"], profile=profile, kernel=(5, 4))) == ["a", "d", "e"]
    assert names(resolved([], profile=profile, arch="arm64")) == ["b", "c"]
    s = resolved([], profile=profile, kernel=(5, 4))
    assert s["architectures"] == ["SCMP_ARCH_X86_64"]
    assert s["syscalls"][-1] == {"names": ["e"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "args": []}


@pytest.mark.parametrize(
    "profile, message",
    [
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{}]},
            "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' "
            "or 'archMap'",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "x"}]},
            "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'",
        ),
    ],
)
def test_profile_errors(profile, message):
    with pytest.raises(ProfileError) as e:
        resolved(profile=profile)
    assert str(e.value) == message


def test_an_empty_profile_is_no_filter():
    assert resolved(profile={}) is None
    assert load_profile("null") == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "unexpected end of JSON input"),
        ("nope", "invalid character 'n' looking for beginning of value"),
        ("{}x", "invalid character 'x' after top-level value"),
        ("{a:1}", "invalid character 'a' looking for beginning of object key string"),
        ("[1]", "json: cannot unmarshal array into Go value of type seccomp.Seccomp"),
    ],
)
def test_load_profile_errors_are_docker_s(text, message):
    with pytest.raises(ProfileError) as e:
        load_profile(text)
    assert str(e.value) == f"Decoding seccomp profile failed: {message}"


# --- the spec ----------------------------------------------------------------------------------------


def spec(**kw):
    options = ContainerOptions(container_id="c" * 64, rootfs="/rootfs", cmd=["true"], **kw)
    return build_spec(options, cgroup_version="2", user_lookup=lambda path: None)


DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
}


def test_spec_gets_the_default_profile_for_its_capabilities():
    s = spec()
    assert s["linux"]["seccomp"] == setup_seccomp(default_profile(), s["process"]["capabilities"]["bounding"])
    assert "mount" in allowed(spec(cap_add=["SYS_ADMIN"])["linux"]["seccomp"])
    assert "mount" not in allowed(s["linux"]["seccomp"])
    assert spec(security_opt=["seccomp=builtin"])["linux"]["seccomp"] == s["linux"]["seccomp"]


@pytest.mark.parametrize(
    "kw",
    [
        {"security_opt": ["seccomp=unconfined"]},
        {"security_opt": ["seccomp:unconfined"]},
        {"privileged": True},
        {"privileged": True, "security_opt": ["seccomp=" + json.dumps(DENY_MKDIR)]},
        {"seccomp_profile": "unconfined"},
    ],
)
def test_spec_without_seccomp(kw):
    assert "seccomp" not in spec(**kw)["linux"]


def test_spec_with_a_custom_profile():
    custom = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": []}],
    }
    assert spec(security_opt=["seccomp=" + json.dumps(DENY_MKDIR)])["linux"]["seccomp"] == custom
    # the daemon's default, overridden by the container's own choice
    assert spec(seccomp_profile=json.dumps(DENY_MKDIR))["linux"]["seccomp"] == custom
    assert (
        "seccomp"
        not in spec(seccomp_profile=json.dumps(DENY_MKDIR), security_opt=["seccomp=unconfined"])["linux"]
    )
    builtin = spec(seccomp_profile=json.dumps(DENY_MKDIR), security_opt=["seccomp=builtin"])
    assert builtin["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    with pytest.raises(SpecError) as e:
        spec(security_opt=["seccomp={"])
    assert str(e.value) == "Decoding seccomp profile failed: unexpected end of JSON input"


# --- compiling for libseccomp ------------------------------------------------------------------------


def test_compile_rules():
    f = seccomp.compile_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO"},  # the default: skipped
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [
                        {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                    ],
                },
                {
                    "names": ["mmap"],
                    "action": "SCMP_ACT_KILL_PROCESS",
                    "args": [
                        {"index": 2, "value": 4, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"},
                        {"index": 3, "value": 1, "op": "SCMP_CMP_NE"},
                    ],
                },  # fmt: skip
            ],
        }
    )
    assert f.default_action == 0x00050000 | errno.EPERM
    assert f.architectures == ("x86_64", "x86")
    assert f.attributes == ((6, 1),)
    eq, ne, masked = 4, 1, 7
    assert f.rules == (
        seccomp.Rule("read", 0x7FFF0000),
        seccomp.Rule("write", 0x7FFF0000),
        seccomp.Rule("mkdir", 0x00050000 | errno.ENOSPC),
        # two conditions on one argument: two rules, ORed
        seccomp.Rule("personality", 0x7FFF0000, (seccomp.ArgCondition(0, eq, 0),)),
        seccomp.Rule("personality", 0x7FFF0000, (seccomp.ArgCondition(0, eq, 8),)),
        # conditions on different arguments: one rule, ANDed
        seccomp.Rule(
            "mmap", 0x80000000, (seccomp.ArgCondition(2, masked, 4, 4), seccomp.ArgCondition(3, ne, 1))
        ),
    )


def _one(**rule):
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], **rule}]}


NOTIFY = "SCMP_ACT_NOTIFY is not supported by the built-in runtime"


@pytest.mark.parametrize(
    "profile, message",
    [
        ({"defaultAction": "SCMP_ACT_NOPE"}, "defaultAction: invalid action 'SCMP_ACT_NOPE'"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, f"defaultAction: {NOTIFY}"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]},
            "invalid seccomp architecture 'SCMP_ARCH_Z80'",
        ),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["NOPE"]}, "seccomp flag 'NOPE' is not supported"),
        (
            _one(action="SCMP_ACT_ERRNO", args=[{"index": 6, "op": "SCMP_CMP_EQ"}]),
            "syscall a: argument index 6 out of range (0-5)",
        ),
        (_one(action="SCMP_ACT_ERRNO", args=[{"index": 0, "op": "EQ"}]), "syscall a: invalid operator 'EQ'"),
        (
            _one(action="SCMP_ACT_ALLOW", errnoRet=1),
            "syscall a: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE",
        ),
        (_one(action="SCMP_ACT_NOTIFY"), f"syscall a: {NOTIFY}"),
    ],
)
def test_compile_errors(profile, message):
    with pytest.raises(seccomp.SeccompError) as e:
        seccomp.compile_filter(profile)
    assert str(e.value) == message


needs_libseccomp = pytest.mark.skipif(
    seccomp.libseccomp_version() is None, reason="libseccomp is not installed"
)


@needs_libseccomp
def test_the_default_profile_compiles_to_bpf():
    f = seccomp.compile_filter(setup_seccomp(default_profile(), DEFAULT))
    program = seccomp.export_bpf(f)
    assert len(program) % 8 == 0 and len(program) // 8 > 300  # one struct sock_filter per 8 bytes
    # unknown names are skipped, as runc does, rather than failing the whole filter
    extra = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "no_such_syscall_xyz"], "action": "SCMP_ACT_ALLOW"}]})  # fmt: skip
    assert seccomp.export_bpf(extra)


def _in_child(f: seccomp.Filter, probe) -> dict:
    """Load `f` in a forked child (no_new_privs first, so no privilege is needed) and run `probe` there."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            seccomp.load_filter(f)
            with open("/proc/self/status") as status:
                mode = next(line.split()[1] for line in status if line.startswith("Seccomp:"))
            os.write(w, json.dumps({"mode": mode, **probe()}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _errno_of(call) -> int:
    try:
        call()
    except OSError as e:
        return e.errno
    return 0


@needs_libseccomp
def test_a_loaded_filter_denies_with_its_errno(tmp_path):
    f = seccomp.compile_filter(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSPC},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
            ],
        }
    )
    (tmp_path / "there").mkdir()

    def probe():
        return {
            "mkdir": _errno_of(lambda: os.mkdir(tmp_path / "new")),
            "rmdir": _errno_of(lambda: os.rmdir(tmp_path / "there")),
            "stat": _errno_of(lambda: os.stat(tmp_path)),
        }

    assert _in_child(f, probe) == {"mode": "2", "mkdir": errno.ENOSPC, "rmdir": errno.EPERM, "stat": 0}
    assert (tmp_path / "there").is_dir() and not (tmp_path / "new").exists()


@needs_libseccomp
def test_the_default_profile_loaded(tmp_path):
    f = seccomp.compile_filter(setup_seccomp(default_profile(), DEFAULT))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.personality.argtypes = [ctypes.c_ulong]

    def raw(*args) -> int:
        rc = libc.syscall(*[ctypes.c_long(a) for a in args])
        return ctypes.get_errno() if rc < 0 else 0

    def probe():
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        return {
            "mkdir": _errno_of(lambda: os.mkdir(tmp_path / "d")),
            "clone3": raw(435, 0, 0),  # ENOSYS: libc falls back to clone
            "clone_newns": raw(56, 0x20000 | 17, 0, 0, 0, 0),
            "unshare_user": raw(272, 0x10000000),
            "keyctl": raw(250, 0, 0, 0, 0, 0),
            "personality_query": 0 if libc.personality(0xFFFFFFFF) >= 0 else ctypes.get_errno(),
            "personality_other": 0 if libc.personality(0x0400000) >= 0 else ctypes.get_errno(),
        }

    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers below are x86_64's")
    assert _in_child(f, probe) == {
        "mode": "2",
        "mkdir": 0,
        "clone3": errno.ENOSYS,
        "clone_newns": errno.EPERM,
        "unshare_user": errno.EPERM,
        "keyctl": errno.EPERM,
        "personality_query": 0,
        "personality_other": errno.EPERM,
    }


def test_daemon_json_seccomp_profile_is_parsed():
    from dockyard.engine.config import ConfigError, build_config

    config = build_config({"seccomp-profile": "/etc/dockyard/seccomp.json"}, {}, "daemon.json")
    assert config.seccomp_profile == "/etc/dockyard/seccomp.json"
    assert "seccomp-profile" not in config.extra
    assert build_config({}, {}, "daemon.json").seccomp_profile == ""
    with pytest.raises(ConfigError) as e:
        build_config({"seccomp-profile": 1}, {}, "daemon.json")
    assert str(e.value).endswith('"seccomp-profile" must be a string')
