import io

import pytest

from dockyard.cli.progress import StreamError, display_stream, progress_text

PULL = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
    {"status": "Downloading", "progressDetail": {"current": 500, "total": 1000}, "id": "aaa"},
    {"status": "Download complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Pull complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Digest: sha256:abc"},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]


def test_plain_output_skips_progress_lines():
    out = io.StringIO()
    display_stream(PULL, out, terminal=False)
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/busybox",
        "aaa: Pulling fs layer",
        "aaa: Download complete",
        "aaa: Pull complete",
        "Digest: sha256:abc",
        "Status: Downloaded newer image for busybox:latest",
    ]


def test_terminal_output_redraws_each_layer_line():
    out = io.StringIO()
    display_stream(PULL, out, terminal=True)
    text = out.getvalue()
    assert "\x1b[1A" in text and "\x1b[2K" in text  # cursor up, clear line
    assert "aaa: Downloading" in text and "500B/1kB" in text


def test_error_in_stream():
    with pytest.raises(StreamError, match="boom"):
        display_stream([{"errorDetail": {"message": "boom"}, "error": "boom"}], io.StringIO(), terminal=False)


def test_progress_text_as_docker_draws_it():
    assert progress_text({}, 200) == ""
    assert progress_text({"current": 1500}, 200) == "   1.5kB"
    assert progress_text({"current": 500, "total": 1000}, 80) == "    500B/1kB"
    bar = progress_text({"current": 500, "total": 1000}, 200)
    assert bar.startswith("[" + "=" * 25 + ">" + " " * 25 + "] ")
