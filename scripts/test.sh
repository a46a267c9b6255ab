#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: unit tests, then integration tests against a
# real dockyardd, a real registry and real kernel features (root). Exits non-zero when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
[ -x .venv/docker-cli/usr/bin/docker ] && export PATH="$PATH:$PWD/.venv/docker-cli/usr/bin"
echo "==> ruff"
.venv/bin/ruff check src tests tools bench
echo "==> tests"
exec .venv/bin/python -m pytest tests -p no:cacheprovider --timeout 600 -q -rfE "$@"
