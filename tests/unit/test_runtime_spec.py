"""The OCI runtime spec built from `docker run` options. Expected values come from moby (oci/defaults.go,
daemon/oci_linux.go, daemon/daemon_unix.go, volume/mounts, oci/caps), runc (libcontainer/user, the sysctl
validator) and the runtime-spec's config.md / config-linux.md."""

import json

import pytest

from dockyard.runtime.spec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH_ENV,
    ContainerOptions,
    DeviceNode,
    SpecError,
    adapt_host_config,
    build_spec,
    host_devices,
    merge_config,
    mount_points,
    parse_bind,
    parse_mount,
    parse_tmpfs,
    resolve_additional_groups,
    resolve_user,
    tweak_capabilities,
    validate_options,
)

CID = "4f1d2c3b5a69" + "0" * 52
SHORT = CID[:12]

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

# a comment line
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
broken:x:notanumber:0::/:/bin/sh
alias:x:1000:1000:second name for 1000:/elsewhere:/bin/sh
"""
GROUP = """\
root:x:0:
wheel:x:10:root,alice
users:x:100:bob
alice:x:1000:
docker:x:999:alice,bob
"""

DOCKER_MASKED = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
DOCKER_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DOCKER_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


def opts(**kw) -> ContainerOptions:
    kw.setdefault("container_id", CID)
    kw.setdefault("rootfs", "/var/lib/dockyard/containers/x/rootfs")
    kw.setdefault("image_cmd", ["sh"])
    return ContainerOptions(**kw)


def files(passwd=PASSWD, group=GROUP):
    return {"/etc/passwd": passwd, "/etc/group": group}.get


def no_devices(path):
    raise AssertionError(f"device lookup not expected: {path}")


def spec(cgroup_version="2", lookup=None, device_lookup=no_devices, **kw):
    return build_spec(
        opts(**kw),
        cgroup_version=cgroup_version,
        user_lookup=lookup or files(),
        device_lookup=device_lookup,
    )


def mounts_by_dest(s):
    return {m["destination"]: m for m in s["mounts"]}


def ns_types(s):
    return [n["type"] for n in s["linux"]["namespaces"]]


def error(fn, *args, **kw) -> str:
    with pytest.raises(SpecError) as e:
        fn(*args, **kw)
    return str(e.value)


# --- Docker's defaults -----------------------------------------------------------------------------------


def test_defaults_match_docker():
    s = spec()
    assert s["ociVersion"] == "1.0.2"
    assert s["root"] == {"path": "/var/lib/dockyard/containers/x/rootfs", "readonly": False}
    assert s["hostname"] == SHORT
    p = s["process"]
    assert p["terminal"] is False
    assert p["args"] == ["sh"]
    assert p["cwd"] == "/"
    assert p["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}
    assert p["env"] == [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={SHORT}", "HOME=/root"]
    assert p["noNewPrivileges"] is False
    assert p["oomScoreAdj"] == 0
    assert "rlimits" not in p
    assert p["capabilities"] == {
        "bounding": DOCKER_CAPS,
        "effective": DOCKER_CAPS,
        "permitted": DOCKER_CAPS,
        "inheritable": [],
        "ambient": [],
    }
    linux = s["linux"]
    assert linux["maskedPaths"] == DOCKER_MASKED
    assert linux["readonlyPaths"] == DOCKER_READONLY
    assert linux["devices"] == []
    assert linux["cgroupsPath"] == f"/dockyard/{CID}"
    assert linux["sysctl"] == {
        "net.ipv4.ping_group_range": "0 2147483647",
        "net.ipv4.ip_unprivileged_port_start": "0",
    }
    assert "rootfsPropagation" not in linux
    assert linux["resources"] == {"devices": linux["resources"]["devices"]}  # no limits unless asked
    json.dumps(s)  # all of it is JSON


def test_default_capabilities_constant_is_dockers():
    assert list(DEFAULT_CAPABILITIES) == DOCKER_CAPS
    assert len(ALL_CAPABILITIES) == 41
    assert ALL_CAPABILITIES[0] == "CAP_CHOWN"
    assert ALL_CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert ALL_CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


def test_default_mounts_match_docker():
    assert [(m["destination"], m["type"], m["source"], m["options"]) for m in spec()["mounts"]] == [
        ("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        ("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        (
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        ("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        ("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid", "noexec", "nodev"]),
        ("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        ("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]),
    ]


def test_default_device_rules():
    rules = spec()["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # deny everything first
    # mknod of any node, as runc adds for Docker; nothing else for every node
    assert rules[1:3] == [
        {"allow": True, "type": "c", "access": "m"},
        {"allow": True, "type": "b", "access": "m"},
    ]
    allowed = {(r["type"], r["major"], r.get("minor")) for r in rules[3:] if r["allow"]}
    assert all(r["access"] == "rwm" for r in rules[3:])
    # null, zero, full, random, urandom, tty, console, ptmx, pts, tun
    assert allowed == {
        ("c", 1, 3),
        ("c", 1, 5),
        ("c", 1, 7),
        ("c", 1, 8),
        ("c", 1, 9),
        ("c", 5, 0),
        ("c", 5, 1),
        ("c", 5, 2),
        ("c", 136, None),
        ("c", 10, 200),
    }
    assert ("c", 10, 229) not in allowed  # fuse


def test_engine_files_are_bound_after_the_defaults():
    s = spec(hostname_path="/c/hostname", hosts_path="/c/hosts", resolv_conf_path="/c/resolv.conf")
    tail = [(m["destination"], m["source"], m["options"]) for m in s["mounts"][7:]]
    assert tail == [
        ("/etc/resolv.conf", "/c/resolv.conf", ["rbind", "rprivate"]),
        ("/etc/hostname", "/c/hostname", ["rbind", "rprivate"]),
        ("/etc/hosts", "/c/hosts", ["rbind", "rprivate"]),
    ]
    assert all(m["type"] == "bind" for m in s["mounts"][7:])


def test_cgroup_path_and_shm_size():
    s = spec(cgroup_path="/dockyard/custom", shm_size=1 << 20)
    assert s["linux"]["cgroupsPath"] == "/dockyard/custom"
    assert mounts_by_dest(s)["/dev/shm"]["options"][-1] == "size=1048576"


# --- cgroup v1 and v2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version, mode, privileged, has_cgroupns",
    [
        ("2", "", False, True),  # private by default on v2
        ("1", "", False, False),  # host by default on v1, as Docker
        ("2", "", True, True),  # v2 unshares even for privileged containers
        ("1", "", True, False),
        ("1", "private", False, True),
        ("2", "host", False, False),
    ],
)
def test_cgroup_namespace(version, mode, privileged, has_cgroupns, monkeypatch):
    s = spec(version, cgroupns_mode=mode, privileged=privileged, device_lookup=lambda p: [])
    assert ns_types(s)[:5] == ["mount", "network", "uts", "pid", "ipc"]
    assert ("cgroup" in ns_types(s)) is has_cgroupns


def test_swappiness_only_on_cgroup_v1():
    o = opts(memory_swappiness=30)
    assert spec("1", memory_swappiness=30)["linux"]["resources"]["memory"] == {"swappiness": 30}
    assert "memory" not in spec("2", memory_swappiness=30)["linux"]["resources"]
    assert validate_options(o, cgroup_version="1") == []
    assert "Memory swappiness discarded" in validate_options(o, cgroup_version="2")[0]
    assert error(validate_options, opts(memory_swappiness=101), cgroup_version="1") == (
        "Invalid value: 101, valid memory swappiness range is 0-100"
    )
    assert "memory" not in spec("1", memory_swappiness=-1)["linux"]["resources"]  # -1: the kernel's default


def test_adapt_host_config():
    assert adapt_host_config({}, cgroup_version="2") == {
        "ShmSize": 67108864,
        "IpcMode": "private",
        "CgroupnsMode": "private",
        "OomKillDisable": False,
    }
    hc = adapt_host_config({"Memory": 1 << 30, "CpuShares": 1, "Privileged": True}, cgroup_version="1")
    assert hc["MemorySwap"] == 2 << 30
    assert hc["CpuShares"] == 2
    assert hc["CgroupnsMode"] == "host"
    kept = {"ShmSize": 1, "IpcMode": "host", "CgroupnsMode": "private", "MemorySwap": -1, "Memory": 1 << 30}
    assert adapt_host_config(kept, cgroup_version="1") | {"OomKillDisable": False} == kept | {
        "OomKillDisable": False
    }
    assert adapt_host_config({"CpuShares": 10**6}, cgroup_version="2")["CpuShares"] == 262144


def test_bad_cgroup_version():
    with pytest.raises(ValueError):
        spec("3")


# --- Entrypoint and Cmd ----------------------------------------------------------------------------------

NO_COMMAND = "No command specified"


@pytest.mark.parametrize(
    "image_ep, image_cmd, entrypoint, cmd, expected",
    [
        (None, ["sh"], None, None, ["sh"]),
        (["/ep"], ["a"], None, None, ["/ep", "a"]),
        (["/ep"], None, None, None, ["/ep"]),
        (["/ep"], ["a"], None, ["b", "c"], ["/ep", "b", "c"]),  # a Cmd replaces the image's
        (["/ep"], ["a"], ["/new"], None, ["/new"]),  # a new Entrypoint drops the image's Cmd
        (["/ep"], ["a"], ["/new", "-x"], ["b"], ["/new", "-x", "b"]),
        (["/ep"], ["a"], [], None, ["a"]),  # Entrypoint [] resets it and keeps the image's Cmd
        (["/ep"], ["a"], [], ["b"], ["b"]),
        (["/ep"], ["a"], [""], ["b"], ["b"]),  # --entrypoint "" (the CLI sends [""])
        (["/ep"], ["a"], [""], None, NO_COMMAND),  # ... drops the image's Cmd too
        ([""], ["sh"], None, None, ["sh"]),  # ENTRYPOINT [""] in the image
        (None, ["sh"], None, [], ["sh"]),  # an empty Cmd is no Cmd
        (None, None, None, None, NO_COMMAND),
        (None, None, None, ["true"], ["true"]),
    ],
)
def test_entrypoint_and_cmd(image_ep, image_cmd, entrypoint, cmd, expected):
    o = opts(image_entrypoint=image_ep, image_cmd=image_cmd, entrypoint=entrypoint, cmd=cmd)
    if isinstance(expected, str):
        assert error(merge_config, o) == expected
    else:
        merged = merge_config(o)
        assert [merged.path, *merged.args] == expected
        assert build_spec(o, cgroup_version="2", user_lookup=files())["process"]["args"] == expected


def test_merged_config_for_inspect():
    m = merge_config(
        opts(image_entrypoint=["/ep"], image_cmd=["a"], entrypoint=[""], cmd=["b"], image_user="alice")
    )
    assert (m.entrypoint, m.cmd, m.path, m.args, m.user) == (None, ["b"], "b", [], "alice")
    m = merge_config(opts(image_stop_signal="SIGQUIT", image_working_dir="/srv", user="bob", stop_signal=""))
    assert (m.stop_signal, m.working_dir, m.user, m.hostname) == ("SIGQUIT", "/srv", "bob", SHORT)


# --- environment -----------------------------------------------------------------------------------------

H = f"HOSTNAME={SHORT}"
P = f"PATH={DEFAULT_PATH_ENV}"


@pytest.mark.parametrize(
    "image_env, env, tty, expected",
    [
        ([], None, False, [P, H]),
        ([], None, True, [P, H, "TERM=xterm"]),
        (["PATH=/bin", "A=1"], None, False, ["PATH=/bin", H, "A=1"]),  # the image's PATH replaces the default
        (["A=1", "B=1"], ["B=2", "C=3"], False, [P, H, "B=2", "C=3", "A=1"]),  # create's first, overriding
        (["A=1"], ["A"], False, [P, H]),  # a bare key unsets
        ([], ["HOSTNAME=mine", "TERM=dumb"], True, [P, "HOSTNAME=mine", "TERM=dumb"]),
        (["X=a=b"], None, False, [P, H, "X=a=b"]),
        ([], ["D=1", "D=2"], False, [P, H, "D=1", "D=2"]),  # kept as given, as Docker does
    ],
)
def test_env(image_env, env, tty, expected):
    s = spec(image_env=image_env, env=env, tty=tty, lookup=files(passwd=None))
    assert s["process"]["env"] == [*expected, "HOME=/"]
    assert s["process"]["terminal"] is tty


def test_home_comes_from_the_users_entry():
    assert spec(user="alice")["process"]["env"][-1] == "HOME=/home/alice"
    assert spec(user="4242")["process"]["env"][-1] == "HOME=/"
    assert spec(env=["HOME=/x"])["process"]["env"][-1] == "HOME=/x"


def test_hostname_and_domainname():
    s = spec(hostname="web", domainname="example.org")
    assert s["hostname"] == "web"
    assert "HOSTNAME=web" in s["process"]["env"]
    assert s["linux"]["sysctl"]["kernel.domainname"] == "example.org"
    s = spec(network_mode="host", network_hostname="buildhost")
    assert s["hostname"] == "buildhost"
    s = spec(
        network_mode="container:db", namespace_paths={"network": "/proc/9/ns/net"}, network_hostname="dbhost"
    )
    assert s["hostname"] == "dbhost"  # the donor's


def test_working_dir():
    assert spec(image_working_dir="/srv")["process"]["cwd"] == "/srv"
    assert spec(image_working_dir="/srv", working_dir="/app")["process"]["cwd"] == "/app"
    assert (
        error(spec, working_dir="app")
        == "the working directory 'app' is invalid, it needs to be an absolute path"
    )


# --- users -----------------------------------------------------------------------------------------------

RANGE = "uids and gids must be in range 0-2147483647"


@pytest.mark.parametrize(
    "user, expected",
    [
        ("", (0, 0, [10])),
        ("root", (0, 0, [10])),
        ("0", (0, 0, [10])),
        ("alice", (1000, 1000, [10, 999])),
        ("1000", (1000, 1000, [10, 999])),  # the first entry with that uid
        ("bob", (1001, 100, [100, 999])),
        ("daemon", (1, 1, [])),
        ("alice:users", (1000, 100, [])),  # an explicit group: no supplementary groups
        ("alice:999", (1000, 999, [])),
        ("alice:4242", (1000, 4242, [])),  # a numeric gid need not exist
        ("4242", (4242, 0, [])),  # nor a numeric uid
        ("4242:4242", (4242, 4242, [])),
        (":users", (0, 100, [])),
        ("nobody", "unable to find user nobody: no matching entries in passwd file"),
        ("alice:nogroup", "unable to find group nogroup: no matching entries in group file"),
        ("2147483648", RANGE),
        ("1:2147483648", RANGE),
        ("-1", RANGE),
    ],
)
def test_resolve_user(user, expected):
    if isinstance(expected, str):
        assert error(resolve_user, user, PASSWD, GROUP) == expected
    else:
        assert resolve_user(user, PASSWD, GROUP) == expected


@pytest.mark.parametrize(
    "user, expected",
    [
        ("", (0, 0, [])),
        ("1000", (1000, 0, [])),
        ("1000:1000", (1000, 1000, [])),
        ("alice", "unable to find user alice: no matching entries in passwd file"),
        ("1000:staff", "unable to find group staff: no matching entries in group file"),
    ],
)
def test_resolve_user_without_passwd_or_group(user, expected):
    if isinstance(expected, str):
        assert error(resolve_user, user, None, None) == expected
    else:
        assert resolve_user(user, None, None) == expected


def test_group_add():
    assert resolve_additional_groups(["wheel", "999", "4242", "10"], GROUP) == [10, 999, 4242]
    assert error(resolve_additional_groups, ["nogroup"], GROUP) == (
        "Unable to find group nogroup: no matching entries in group file"
    )
    s = spec(user="alice", group_add=["users"])
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 999, 100]}


def test_user_in_spec_comes_from_create_then_image():
    assert spec(image_user="bob")["process"]["user"]["uid"] == 1001
    assert spec(image_user="bob", user="alice")["process"]["user"]["uid"] == 1000
    assert error(spec, user="ghost") == "unable to find user ghost: no matching entries in passwd file"


# --- binds, mounts, tmpfs --------------------------------------------------------------------------------


def bind_error(raw, why):
    return f"invalid volume specification: '{raw}': invalid mount config for type {why}"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("/h:/c", ("bind", "/h", "/c", True, "rprivate")),
        ("/h:/c:ro", ("bind", "/h", "/c", False, "rprivate")),
        ("/h:/c:rw", ("bind", "/h", "/c", True, "rprivate")),
        ("/h:/c:ro,shared", ("bind", "/h", "/c", False, "shared")),
        ("/h:/c:rslave", ("bind", "/h", "/c", True, "rslave")),
        ("/h:/c:z", ("bind", "/h", "/c", True, "rprivate")),
        ("/h:/c:Z,ro,private", ("bind", "/h", "/c", False, "private")),
        ("/h:/c:cached", ("bind", "/h", "/c", True, "rprivate")),
        ("/h/../x/:/c/./d/", ("bind", "/x", "/c/d", True, "rprivate")),
        ("name:/data", ("volume", "name", "/data", True, "")),
        ("name:/data:ro", ("volume", "name", "/data", False, "")),
        ("/data", ("volume", "", "/data", True, "")),  # an anonymous volume
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
        ("", "invalid volume specification: ''"),
        (":/c", "invalid volume specification: ':/c'"),
        ("/h:rw", "invalid volume specification: '/h:rw'"),  # a mode where the destination goes
        ("/h:", "invalid volume specification: '/h:'"),
        ("/h:/c:bogus", "invalid mode: bogus"),
        ("/h:/c:ro,rw", "invalid mode: ro,rw"),
        ("/h:/c:shared,slave", "invalid mode: shared,slave"),
        ("/h:c", bind_error("/h:c", "\"bind\": invalid mount path: 'c' mount path must be absolute")),
        ("data", bind_error("data", "\"volume\": invalid mount path: 'data' mount path must be absolute")),
        ("/h:/", bind_error("/h:/", "\"bind\": invalid specification: destination can't be '/'")),
        ("vol:/d:shared", bind_error("vol:/d:shared", '"volume": field BindOptions must not be specified')),
        ("/h:/c:nocopy", bind_error("/h:/c:nocopy", '"bind": field VolumeOptions must not be specified')),
    ],
)
def test_parse_bind(raw, expected):
    if isinstance(expected, str):
        assert error(parse_bind, raw) == expected
    else:
        mp = parse_bind(raw)
        assert (mp.type, mp.source, mp.destination, mp.rw, mp.propagation) == expected


def test_nocopy_volume():
    mp = parse_bind("name:/data:ro,nocopy")
    assert (mp.type, mp.rw, mp.copy_data, mp.mode) == ("volume", False, False, "ro,nocopy")


@pytest.mark.parametrize(
    "mount, expected",
    [
        ({"Type": "bind", "Source": "/h", "Target": "/c"}, ("bind", "/h", "/c", True, "rprivate", "")),
        (
            {
                "Type": "bind",
                "Source": "/h",
                "Target": "/c",
                "ReadOnly": True,
                "BindOptions": {"Propagation": "rslave"},
            },
            ("bind", "/h", "/c", False, "rslave", ""),
        ),
        ({"Type": "volume", "Source": "v", "Target": "/d"}, ("volume", "v", "/d", True, "", "")),
        ({"Type": "volume", "Target": "/d"}, ("volume", "", "/d", True, "", "")),
        (
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}},
            ("tmpfs", "", "/t", True, "", "mode=1777,size=64m"),
        ),
        ({"Type": "tmpfs", "Target": "/t", "ReadOnly": True}, ("tmpfs", "", "/t", False, "", "ro")),
        (
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1000}},
            ("tmpfs", "", "/t", True, "", "size=1000"),
        ),
    ],
)
def test_parse_mount(mount, expected):
    mp = parse_mount(mount)
    assert (mp.type, mp.source, mp.destination, mp.rw, mp.propagation, mp.tmpfs_data) == expected


@pytest.mark.parametrize(
    "mount, expected",
    [
        ({"Type": "bind", "Source": "/h"}, '"bind": field Target must not be empty'),
        ({"Type": "bind", "Target": "/c"}, '"bind": field Source must not be empty'),
        (
            {"Type": "bind", "Source": "h", "Target": "/c"},
            "\"bind\": invalid mount path: 'h' mount path must be absolute",
        ),
        (
            {"Type": "bind", "Source": "/h", "Target": "c"},
            "\"bind\": invalid mount path: 'c' mount path must be absolute",
        ),
        (
            {"Type": "bind", "Source": "/h", "Target": "/c", "BindOptions": {"Propagation": "sideways"}},
            '"bind": invalid propagation mode: sideways',
        ),
        (
            {"Type": "volume", "Target": "/d", "ReadOnly": True},
            '"volume": must not set ReadOnly mode when using anonymous volumes',
        ),
        (
            {"Type": "volume", "Source": "v", "Target": "/d", "BindOptions": {}},
            '"volume": field BindOptions must not be specified',
        ),
        ({"Type": "tmpfs", "Source": "x", "Target": "/t"}, '"tmpfs": field Source must not be specified'),
        ({"Type": "npipe", "Source": "x", "Target": "/t"}, '"npipe": mount type unknown'),
        ({"Type": "volume", "Target": "/"}, "\"volume\": invalid specification: destination can't be '/'"),
    ],
)
def test_parse_mount_errors(mount, expected):
    assert error(parse_mount, mount) == f"invalid mount config for type {expected}"


def test_parse_tmpfs():
    assert parse_tmpfs("/run", "size=1m,exec").tmpfs_data == "size=1m,exec"
    assert parse_tmpfs("/run/", "ro").rw is False
    assert error(parse_tmpfs, "run") == "invalid mount path: 'run' mount path must be absolute"
    assert error(parse_tmpfs, "/") == "invalid specification: destination can't be '/'"
    assert error(parse_tmpfs, "/run", "foo") == 'Invalid tmpfs option ["foo"]'
    assert error(parse_tmpfs, "/run", "color=red") == 'Invalid tmpfs option ["color" "red"]'


def test_duplicate_mount_points():
    assert error(mount_points, opts(binds=["/a:/d", "/b:/d/"])) == "Duplicate mount point: /d"
    both = opts(binds=["/a:/d"], mounts=[{"Type": "volume", "Target": "/d"}])
    assert error(mount_points, both) == "Duplicate mount point: /d"
    assert error(mount_points, opts(binds=["/a:/d"], tmpfs={"/d": ""})) == "Duplicate mount point: /d"


def test_user_mounts_in_the_spec():
    s = spec(
        binds=["/h:/data:ro", "vol:/v", "/srv/etc:/etc"],
        mounts=[{"Type": "bind", "Source": "/m", "Target": "/m", "BindOptions": {"NonRecursive": True}}],
        tmpfs={"/run": "exec,size=1m"},
        volume_paths={"/v": "/var/lib/dockyard/volumes/vol/_data"},
        hosts_path="/c/hosts",
    )
    by = mounts_by_dest(s)
    assert by["/data"] == {
        "destination": "/data",
        "type": "bind",
        "source": "/h",
        "options": ["rbind", "ro", "rprivate"],
    }
    assert by["/v"]["source"] == "/var/lib/dockyard/volumes/vol/_data"
    assert by["/v"]["options"] == ["rbind"]  # volumes carry no propagation
    assert by["/m"]["options"] == ["bind", "rprivate"]
    assert by["/run"] == {
        "destination": "/run",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", "rprivate", "exec", "size=1m"],
    }
    # parents first: the /etc bind must not hide /etc/hosts
    order = [m["destination"] for m in s["mounts"][7:]]
    assert order.index("/etc") < order.index("/etc/hosts")
    depths = [d.count("/") for d in order]
    assert depths == sorted(depths)


def test_image_volumes_become_anonymous_volumes():
    o = opts(image_volumes=["/var/lib/db", "/cache"], binds=["/h:/cache"])
    points = mount_points(o)
    assert [(p.type, p.source, p.destination, p.origin) for p in points] == [
        ("bind", "/h", "/cache", "binds"),
        ("volume", "", "/var/lib/db", "image"),
    ]
    o = opts(volumes=["/scratch", "/var/lib/db"], image_volumes=["/var/lib/db"])
    assert [(p.destination, p.origin) for p in mount_points(o)] == [
        ("/scratch", "volumes"),
        ("/var/lib/db", "volumes"),
    ]
    s = build_spec(
        opts(image_volumes=["/var/lib/db"], volume_paths={"/var/lib/db": "/vols/abc/_data"}),
        cgroup_version="2",
        user_lookup=files(),
    )
    assert mounts_by_dest(s)["/var/lib/db"]["source"] == "/vols/abc/_data"
    assert (
        error(spec, image_volumes=["/var/lib/db"])
        == "no host path given for the volume mounted at /var/lib/db"
    )


def test_user_mounts_override_defaults_and_engine_files():
    s = spec(binds=["/myhosts:/etc/hosts:ro", "/big:/dev/shm"], hosts_path="/c/hosts")
    by = mounts_by_dest(s)
    assert by["/etc/hosts"]["source"] == "/myhosts"
    assert by["/dev/shm"]["type"] == "bind"
    assert sum(m["destination"] == "/dev/shm" for m in s["mounts"]) == 1
    s = spec(binds=["/hostdev:/dev"])
    dests = [m["destination"] for m in s["mounts"]]
    assert "/dev/pts" not in dests and "/dev/mqueue" not in dests and "/dev/shm" not in dests


@pytest.mark.parametrize(
    "propagation, root",
    [
        ("shared", "shared"),
        ("rshared", "shared"),
        ("slave", "rslave"),
        ("rslave", "rslave"),
        ("private", None),
    ],
)
def test_bind_propagation_sets_rootfs_propagation(propagation, root):
    s = spec(binds=[f"/h:/c:{propagation}"])
    assert mounts_by_dest(s)["/c"]["options"] == ["rbind", propagation]
    assert s["linux"].get("rootfsPropagation") == root


def test_readonly_rootfs():
    s = spec(readonly_rootfs=True, binds=["/h:/data"], hosts_path="/c/hosts")
    assert s["root"]["readonly"] is True
    by = mounts_by_dest(s)
    assert by["/etc/hosts"]["options"] == ["rbind", "ro", "rprivate"]
    assert by["/data"]["options"] == ["rbind", "rprivate"]  # user mounts keep their own mode
    for dest in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"):
        assert "ro" not in by[dest]["options"], dest
    assert "ro" in by["/sys"]["options"] and "ro" in by["/sys/fs/cgroup"]["options"]


# --- IPC, PID, UTS, network ------------------------------------------------------------------------------


def test_ipc_modes():
    s = spec(ipc_mode="none")
    assert "/dev/shm" not in mounts_by_dest(s)
    assert "ipc" in ns_types(s)
    s = spec(ipc_mode="host")
    assert "ipc" not in ns_types(s)
    assert mounts_by_dest(s)["/dev/shm"] == {
        "destination": "/dev/shm",
        "type": "bind",
        "source": "/dev/shm",
        "options": ["rbind", "rprivate"],
    }
    s = spec(ipc_mode="shareable", shm_path="/c/shm")
    assert mounts_by_dest(s)["/dev/shm"]["source"] == "/c/shm"
    s = spec(ipc_mode="shareable")  # no shared mount prepared: a private one
    assert mounts_by_dest(s)["/dev/shm"]["type"] == "tmpfs"
    s = spec(ipc_mode="container:db", namespace_paths={"ipc": "/proc/42/ns/ipc"}, shm_path="/db/shm")
    assert {"type": "ipc", "path": "/proc/42/ns/ipc"} in s["linux"]["namespaces"]
    assert mounts_by_dest(s)["/dev/shm"]["source"] == "/db/shm"


def test_pid_and_uts_modes():
    assert "pid" not in ns_types(spec(pid_mode="host"))
    s = spec(pid_mode="container:db", namespace_paths={"pid": "/proc/42/ns/pid"})
    assert {"type": "pid", "path": "/proc/42/ns/pid"} in s["linux"]["namespaces"]
    s = spec(uts_mode="host")
    assert "uts" not in ns_types(s)
    assert "hostname" not in s


def test_network_modes():
    s = spec(netns_path="/run/dockyard/netns/x")
    assert s["linux"]["namespaces"][1] == {"type": "network", "path": "/run/dockyard/netns/x"}
    s = spec(network_mode="none")
    assert s["linux"]["namespaces"][1] == {"type": "network"}
    assert "net.ipv4.ping_group_range" in s["linux"]["sysctl"]
    s = spec(network_mode="host", network_hostname="h")
    assert "network" not in ns_types(s)
    assert s["linux"]["sysctl"] == {}  # Docker sets its net sysctls only in a netns of the container's own
    s = spec(network_mode="container:db", namespace_paths={"network": "/proc/42/ns/net"})
    assert s["linux"]["namespaces"][1] == {"type": "network", "path": "/proc/42/ns/net"}
    assert s["linux"]["sysctl"] == {}
    assert error(spec, network_mode="container:db") == "no network namespace path given for mode container:db"


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({"ipc_mode": "bogus"}, "invalid IPC mode: bogus"),
        ({"ipc_mode": "container:"}, "invalid IPC mode: container:"),
        ({"pid_mode": "private"}, "invalid PID mode: private"),
        ({"pid_mode": "container:"}, "invalid PID mode: container:"),
        ({"uts_mode": "private"}, "invalid UTS mode: private"),
        ({"cgroupns_mode": "shared"}, "invalid cgroup namespace mode: shared"),
        ({"network_mode": "container"}, "Invalid network mode: invalid container format container:<name|id>"),
        (
            {"network_mode": "container:db", "hostname": "x"},
            "conflicting options: hostname and the network mode",
        ),
        ({"uts_mode": "host", "hostname": "x"}, "conflicting options: hostname and the UTS mode"),
    ],
)
def test_bad_modes(kw, expected):
    assert error(validate_options, opts(**kw), cgroup_version="2") == expected


# --- sysctls ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sysctls, kw, expected",
    [
        ({"net.core.somaxconn": "1024"}, {}, None),
        ({"net.ipv4.ping_group_range": "1 1"}, {}, None),  # the user's value wins
        ({"kernel.shmmax": "1"}, {}, None),
        ({"fs.mqueue.msg_max": "20"}, {}, None),
        (
            {"net.core.somaxconn": "1"},
            {"network_mode": "host"},
            'sysctl "net.core.somaxconn" is not allowed in the hosts network namespace',
        ),
        (
            {"kernel.msgmax": "1"},
            {"ipc_mode": "host"},
            'sysctl "kernel.msgmax" is not allowed in the hosts ipc namespace',
        ),
        (
            {"kernel.hostname": "x"},
            {},
            'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field',
        ),
        ({"vm.swappiness": "1"}, {}, 'sysctl "vm.swappiness" is not in a separate kernel namespace'),
        (
            {"kernel.domainname": "x"},
            {"uts_mode": "host"},
            'sysctl "kernel.domainname" is not in a separate kernel namespace',
        ),
    ],
)
def test_sysctls(sysctls, kw, expected):
    if expected is None:
        s = spec(sysctls=sysctls, **kw)
        for key, value in sysctls.items():
            assert s["linux"]["sysctl"][key] == value
    else:
        assert error(spec, sysctls=sysctls, **kw) == expected


# --- capabilities and security options -------------------------------------------------------------------

ALL = list(ALL_CAPABILITIES)


@pytest.mark.parametrize(
    "add, drop, expected",
    [
        ([], [], DOCKER_CAPS),
        (["NET_ADMIN"], [], [*DOCKER_CAPS, "CAP_NET_ADMIN"]),
        (["cap_sys_ptrace"], [], [*DOCKER_CAPS, "CAP_SYS_PTRACE"]),
        (["CHOWN"], [], DOCKER_CAPS),  # no duplicates
        ([], ["CHOWN", "cap_net_raw"], [c for c in DOCKER_CAPS if c not in ("CAP_CHOWN", "CAP_NET_RAW")]),
        (["CHOWN"], ["ALL"], ["CAP_CHOWN"]),
        ([], ["all"], []),
        (["ALL"], [], ALL),
        (["ALL"], ["SYS_ADMIN"], [c for c in ALL if c != "CAP_SYS_ADMIN"]),
        (["FOO"], [], 'unknown capability: "CAP_FOO"'),
        ([], ["CAP_BAR"], 'unknown capability: "CAP_BAR"'),
    ],
)
def test_capabilities(add, drop, expected):
    if isinstance(expected, str):
        assert error(tweak_capabilities, add, drop) == expected
        assert error(spec, cap_add=add, cap_drop=drop) == expected
    else:
        assert tweak_capabilities(add, drop) == expected
        assert spec(cap_add=add, cap_drop=drop)["process"]["capabilities"]["bounding"] == expected


def test_capabilities_limited_by_the_kernel():
    assert tweak_capabilities([], [], True, last_cap=37) == ALL[:38]
    assert error(tweak_capabilities, ["BPF"], [], last_cap=37) == 'unknown capability: "CAP_BPF"'


@pytest.mark.parametrize(
    "security_opt, expected",
    [
        ([], False),
        (["no-new-privileges"], True),
        (["no-new-privileges=true"], True),
        (["no-new-privileges:true"], True),
        (["no-new-privileges", "no-new-privileges=false"], False),
        (["seccomp=unconfined", "apparmor=unconfined", "label=disable", "label:type:x", "disable"], False),
        (["bogus"], 'invalid --security-opt 1: "bogus"'),
        (["foo=bar"], 'invalid --security-opt 2: "foo=bar"'),
        (["no-new-privileges=maybe"], 'invalid --security-opt 2: "no-new-privileges=maybe"'),
        (
            ["seccomp=/etc/profile.json"],
            "Decoding seccomp profile failed: invalid character '/' looking for beginning of value",
        ),
    ],
)
def test_security_opt(security_opt, expected):
    if isinstance(expected, str):
        assert error(spec, security_opt=security_opt) == expected
    else:
        assert spec(security_opt=security_opt)["process"]["noNewPrivileges"] is expected


def test_privileged():
    nodes = [
        DeviceNode("/dev/sda", "b", 8, 0, 0o660, 0, 6),
        DeviceNode("/dev/kvm", "c", 10, 232, 0o660, 0, 36),
    ]
    asked = []

    def lookup(path):
        asked.append(path)
        return nodes

    s = spec(privileged=True, device_lookup=lookup, readonly_rootfs=True)
    assert asked == ["/dev"]
    assert s["process"]["capabilities"]["bounding"] == ALL
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    by = mounts_by_dest(s)
    assert "ro" not in by["/sys"]["options"] and "ro" not in by["/sys/fs/cgroup"]["options"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert s["linux"]["devices"] == [
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6},
        {"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232, "fileMode": 0o660, "uid": 0, "gid": 36},
    ]


# --- devices ---------------------------------------------------------------------------------------------


def fake_devices(path):
    table = {
        "/dev/fuse": [DeviceNode("/dev/fuse", "c", 10, 229)],
        "/dev/snd": [
            DeviceNode("/dev/snd/controlC0", "c", 116, 2),
            DeviceNode("/dev/snd/timer", "c", 116, 33),
        ],
        "/etc/passwd": [],
    }
    if path not in table:
        raise FileNotFoundError(2, "No such file or directory", path)
    return table[path]


def test_devices():
    s = spec(
        devices=[
            {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/myfuse", "CgroupPermissions": "rw"},
            {"PathOnHost": "/dev/snd", "PathInContainer": "", "CgroupPermissions": ""},
        ],
        device_lookup=fake_devices,
    )
    assert [d["path"] for d in s["linux"]["devices"]] == [
        "/dev/myfuse",
        "/dev/snd/controlC0",
        "/dev/snd/timer",
    ]
    rules = s["linux"]["resources"]["devices"]
    assert rules[-3:] == [
        {
            "allow": True,
            "type": "c",
            "major": 10,
            "minor": 229,
            "access": "rw",
        },  # after the default fuse deny
        {"allow": True, "type": "c", "major": 116, "minor": 2, "access": "rwm"},
        {"allow": True, "type": "c", "major": 116, "minor": 33, "access": "rwm"},
    ]


@pytest.mark.parametrize(
    "mapping, expected",
    [
        (
            {"PathOnHost": "/dev/nope"},
            'error gathering device information while adding custom device "/dev/nope": '
            "no such file or directory",
        ),
        (
            {"PathOnHost": "/etc/passwd"},
            'error gathering device information while adding custom device "/etc/passwd": not a device node',
        ),
        ({"PathOnHost": "/dev/fuse", "CgroupPermissions": "rwx"}, "bad mode specified: rwx"),
    ],
)
def test_device_errors(mapping, expected):
    assert error(spec, devices=[mapping], device_lookup=fake_devices) == expected


def test_host_devices_reads_real_nodes():
    (null,) = host_devices("/dev/null")
    assert (null.path, null.type, null.major, null.minor) == ("/dev/null", "c", 1, 3)
    with pytest.raises(FileNotFoundError):
        host_devices("/dev/does-not-exist")
    assert host_devices("/proc/self/status") == []  # not a device node


# --- resources, rlimits, oom ------------------------------------------------------------------------------

MB = 1 << 20


@pytest.mark.parametrize(
    "kw, memory",
    [
        ({"memory": 512 * MB}, {"limit": 512 * MB, "swap": 1024 * MB}),  # swap defaults to twice the memory
        ({"memory": 512 * MB, "memory_swap": -1}, {"limit": 512 * MB}),  # unlimited swap
        ({"memory": 512 * MB, "memory_swap": 600 * MB}, {"limit": 512 * MB, "swap": 600 * MB}),
        ({"memory_reservation": 64 * MB}, {"reservation": 64 * MB}),
        ({"oom_kill_disable": False}, {"disableOOMKiller": False}),
    ],
)
def test_memory(kw, memory):
    assert spec(**kw)["linux"]["resources"]["memory"] == memory


@pytest.mark.parametrize(
    "kw, cpu",
    [
        ({"nano_cpus": 1_500_000_000}, {"period": 100000, "quota": 150000}),
        ({"nano_cpus": 10_000_000}, {"period": 100000, "quota": 1000}),
        ({"cpu_quota": 50000, "cpu_period": 200000}, {"period": 200000, "quota": 50000}),
        ({"cpu_quota": -1}, {"quota": -1}),
        ({"cpu_shares": 512}, {"shares": 512}),
        ({"cpu_shares": 1}, {"shares": 2}),  # clamped as Docker does
        ({"cpuset_cpus": "0-1", "cpuset_mems": "0"}, {"cpus": "0-1", "mems": "0"}),
    ],
)
def test_cpu(kw, cpu):
    assert spec(**kw)["linux"]["resources"]["cpu"] == cpu


@pytest.mark.parametrize(
    "limit, expected", [(None, None), (100, {"limit": 100}), (0, {"limit": -1}), (-5, {"limit": -1})]
)
def test_pids(limit, expected):
    assert spec(pids_limit=limit)["linux"]["resources"].get("pids") == expected


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({"memory": 4 * MB}, "Minimum memory limit allowed is 6MB"),
        (
            {"memory": 64 * MB, "memory_swap": 32 * MB},
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            {"memory_swap": 64 * MB},
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        ({"memory_reservation": MB}, "Minimum memory reservation allowed is 6MB"),
        (
            {"memory": 64 * MB, "memory_reservation": 128 * MB},
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            {"nano_cpus": 10**9, "cpu_period": 100000},
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            {"nano_cpus": 10**9, "cpu_quota": 100000},
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        ({"nano_cpus": 5 * 10**9}, "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"),
        (
            {"cpu_period": 999},
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            {"cpu_period": 1000001},
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        ({"cpu_quota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        ({"shm_size": -1}, "SHM size can not be less than 0"),
        ({"oom_score_adj": 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    ],
)
def test_resource_errors(kw, expected):
    assert error(validate_options, opts(**kw), cgroup_version="2", ncpu=4) == expected


def test_validation_warnings():
    assert validate_options(opts(), cgroup_version="2") == []
    assert validate_options(opts(cpu_shares=1), cgroup_version="2") == [
        "Changing requested CPUShares of 1 to minimum allowed of 2"
    ]
    warned = validate_options(opts(oom_kill_disable=True), cgroup_version="1")
    assert warned[0].startswith("OOM killer is disabled for the container, but no memory limit is set")


def test_ulimits():
    s = spec(
        ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "core", "Soft": -1, "Hard": -1}],
        default_ulimits=[
            {"Name": "nofile", "Soft": 1, "Hard": 1},
            {"Name": "nproc", "Soft": 100, "Hard": 200},
        ],
    )
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_NPROC", "hard": 200, "soft": 100},  # the daemon's default, not overridden
    ]
    assert error(spec, ulimits=[{"Name": "files", "Soft": 1, "Hard": 1}]) == "invalid ulimit type: files"
    assert error(spec, ulimits=[{"Name": "nofile", "Soft": 2, "Hard": 1}]) == (
        "ulimit soft limit must be less than or equal to hard limit: 2 > 1"
    )


def test_oom_score_adj():
    assert spec(oom_score_adj=-500)["process"]["oomScoreAdj"] == -500


# --- from the API ----------------------------------------------------------------------------------------


def test_from_api():
    o = ContainerOptions.from_api(
        CID,
        "/rootfs",
        {"Cmd": "echo hi", "Entrypoint": None, "Env": ["A=1"], "Tty": True, "User": "alice", "Hostname": "h"},
        {
            "Binds": ["/h:/c:ro"],
            "Memory": 64 * MB,
            "NanoCpus": 10**9,
            "CapAdd": ["NET_ADMIN"],
            "PidsLimit": 50,
            "NetworkMode": "bridge",
            "Tmpfs": {"/run": ""},
            "Init": True,
        },
        {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Volumes": {"/data": {}}, "WorkingDir": "/srv"},
        netns_path="/run/netns/x",
        volume_paths={"/data": "/vols/anon/_data"},
    )
    assert (o.cmd, o.entrypoint, o.tty, o.user, o.hostname) == (["echo hi"], None, True, "alice", "h")
    assert (o.memory, o.nano_cpus, o.cap_add, o.pids_limit) == (64 * MB, 10**9, ["NET_ADMIN"], 50)
    assert (o.image_volumes, o.image_working_dir, o.netns_path) == (["/data"], "/srv", "/run/netns/x")
    with pytest.raises(SpecError, match="--init was requested"):  # Init: true, and no init binary
        build_spec(o, cgroup_version="2", user_lookup=files())
    o.init_binary = "/usr/bin/docker-init"
    s = build_spec(o, cgroup_version="2", user_lookup=files())
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "echo hi"]
    assert mounts_by_dest(s)["/sbin/docker-init"]["source"] == "/usr/bin/docker-init"
    assert s["process"]["env"][:4] == ["PATH=/bin", "HOSTNAME=h", "TERM=xterm", "A=1"]
    assert "CAP_NET_ADMIN" in s["process"]["capabilities"]["bounding"]
    assert mounts_by_dest(s)["/data"]["source"] == "/vols/anon/_data"
    assert s["process"]["cwd"] == "/srv"
