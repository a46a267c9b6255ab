import json

import pytest

from dockyard.engine.config import ConfigError, build_config, read_config_file


def write(tmp_path, data) -> str:
    path = tmp_path / "daemon.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_defaults_without_file(tmp_path):
    config = build_config(read_config_file(str(tmp_path / "none.json"), required=False), {}, "x")
    assert config.hosts == ["unix:///var/run/dockyard.sock"]
    assert config.socket_path == "/var/run/dockyard.sock"
    assert config.data_root == "/var/lib/dockyard"
    assert config.max_concurrent_downloads == 3
    assert config.default_runtime == "dockyard"


def test_missing_required_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file or directory"):
        read_config_file(str(tmp_path / "none.json"), required=True)


def test_dockerd_keys_are_read(tmp_path):
    path = write(
        tmp_path,
        {
            "registry-mirrors": ["https://mirror.example/"],
            "insecure-registries": ["10.0.0.1:5000"],
            "max-concurrent-downloads": 7,
            "log-opts": {"max-size": "10m", "max-file": "3"},
            "runtimes": {"runc": {"path": "/usr/bin/runc", "runtimeArgs": ["--debug"]}},
            "default-runtime": "runc",
            "default-address-pools": [{"base": "10.123.0.0/16", "size": 24}],
            "live-restore": True,
            "userland-proxy": False,  # known to dockerd, accepted and kept
        },
    )
    config = build_config(read_config_file(path, True), {}, path)
    assert config.registry_mirrors == ["https://mirror.example"]
    assert config.insecure_registries == ["10.0.0.1:5000"]
    assert config.max_concurrent_downloads == 7
    assert config.log_opts == {"max-size": "10m", "max-file": "3"}
    assert config.runtimes["runc"].runtime_args == ["--debug"]
    assert config.default_runtime == "runc"
    assert config.default_address_pools[0].size == 24
    assert config.live_restore is True
    assert config.extra == {"userland-proxy": False}


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, {"debug": True, "bogus-key": 1, "another": 2})
    with pytest.raises(ConfigError) as e:
        read_config_file(path, True)
    assert str(e.value) == (
        f"unable to configure the Dockyard daemon with file {path}: "
        "the following directives don't match any configuration option: another, bogus-key"
    )


def test_bad_json(tmp_path):
    path = write(tmp_path, '{"debug": true,,}')
    with pytest.raises(ConfigError, match=f"{path}: invalid JSON: .*line 1"):
        read_config_file(path, True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max-concurrent-downloads": 0}, '"max-concurrent-downloads" must be a positive integer'),
        ({"debug": "yes"}, '"debug" must be true or false'),
        ({"registry-mirrors": "http://x"}, '"registry-mirrors" must be a list of strings'),
        ({"log-level": "loud"}, '"log-level" must be one of'),
        ({"runtimes": {"x": {}}}, 'runtime "x" in "runtimes" needs a "path"'),
        ({"default-address-pools": [{"base": "10.0.0.0/8", "size": 40}]}, "prefix length"),
        ({"hosts": ["tcp://0.0.0.0:2375"]}, "only unix:// sockets are supported"),
        ({"default-runtime": "kata"}, 'default runtime "kata" is not a configured runtime'),
    ],
)
def test_bad_values(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_config(read_config_file(path, True), {}, path)


def test_flags_override_file(tmp_path):
    path = write(tmp_path, {"registry-mirrors": ["http://a"], "data-root": "/srv/a", "debug": False})
    config = build_config(
        read_config_file(path, True),
        {"registry-mirrors": ["http://b"], "data-root": None, "debug": True},
        path,
    )
    assert config.registry_mirrors == ["http://b"]
    assert config.data_root == "/srv/a"
    assert config.log_level == "debug"


def test_bad_flag_value():
    with pytest.raises(ConfigError, match="invalid flag --registry-mirrors"):
        build_config({}, {"registry-mirrors": ["ftp://x"]}, "x")


def test_add_runtime_flags_join_the_files_runtimes(tmp_path):
    path = write(tmp_path, {"runtimes": {"a": {"path": "/opt/a", "runtimeArgs": ["--debug"]}}})
    config = build_config(
        read_config_file(path, True),
        {"add-runtime": ["b=/opt/b", "c=crun"], "default-runtime": "b"},
        path,
    )
    paths = {name: rt.path for name, rt in config.runtimes.items()}
    assert paths == {"a": "/opt/a", "b": "/opt/b", "c": "crun"}
    assert config.runtimes["a"].runtime_args == ["--debug"]
    assert config.default_runtime == "b"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"add-runtime": ["nopath"]}, 'invalid flag --add-runtime: "nopath" is not a runtime: use name=path'),
        ({"add-runtime": ["dockyard=/bin/x"]}, "runtime name 'dockyard' is reserved"),
    ],
)
def test_bad_add_runtime_flags(flags, message):
    with pytest.raises(ConfigError, match=message):
        build_config({}, flags, "x")


def test_the_built_in_runtimes_name_is_reserved_in_the_file(tmp_path):
    path = write(tmp_path, {"runtimes": {"dockyard": {"path": "/bin/x"}}})
    with pytest.raises(ConfigError, match="runtime name 'dockyard' is reserved"):
        build_config(read_config_file(path, True), {}, path)
