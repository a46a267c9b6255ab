#!/usr/bin/env bash
# The main job: install Dockyard, start the daemon and run the seed's scenario end to end.
# Works without internet: a local registry, filled with images built from the host's busybox, serves
# as the daemon's registry mirror for Docker Hub, the way Docker users point at a mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bash scripts/setup.sh
export PATH="$repo/.venv/bin:$PATH"

demo=/run/dockyard-demo
mkdir -p "$demo"
export DOCKYARD_HOST="unix://$demo/dockyard.sock"
registry_pidfile="$demo/registry.pid"
data_root=/var/lib/dockyard-demo
bridge=dockyard0
port=${DEMO_PORT:-8888}
daemon_pid=""

cleanup() {
  set +e
  [ -n "$daemon_pid" ] && dockyard rm -f web baked >/dev/null 2>&1
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  # the demo's daemon is gone: take its bridge and rules with it (a user's daemon keeps them, as dockerd)
  [ -n "$daemon_pid" ] && "$repo/.venv/bin/python" -c \
    'import sys; from dockyard.network import remove_host_networking as r; r(sys.argv[1], sys.argv[2])' \
    "$data_root" "$bridge"
  [ -f "$registry_pidfile" ] && "$repo/.venv/bin/python" "$repo/tools/registry.py" stop --pidfile "$registry_pidfile"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "==> starting a local registry with busybox and httpd images"
registry=$(.venv/bin/python tools/registry.py start --dir "$demo/registry" --pidfile "$registry_pidfile")
.venv/bin/python tools/testimages.py --registry "$registry" >/dev/null

echo "==> starting dockyardd (mirror http://$registry, log in $demo/dockyardd.log)"
dockyardd -H "$DOCKYARD_HOST" --data-root "$data_root" --exec-root "$demo/exec" --bridge "$bridge" \
  --pidfile "$demo/dockyardd.pid" --registry-mirror "http://$registry" >"$demo/dockyardd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  dockyard version >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$demo/dockyardd.log"; exit 1; }
  sleep 0.1
done

step dockyard version
fetch() {  # the page, once the server in the container answers
  for _ in $(seq 100); do curl -fsS "$1" 2>/dev/null && return 0; sleep 0.1; done
  curl -fsS "$1"
}

step dockyard pull httpd        # Docker Hub's httpd, served by the local mirror
step dockyard images
# the seed's scenario: a folder of the host served by httpd on port 8888
cd "$demo" && rm -rf site && mkdir site
echo '<h1>Hello from a folder on the host</h1>' >site/index.html
step dockyard run -d --name web -p "$port:80" -v ./site:/usr/local/apache2/htdocs httpd
step fetch "http://127.0.0.1:$port/"
echo '<h1>Edited on the host, served at once</h1>' >site/index.html
step fetch "http://127.0.0.1:$port/"
step dockyard exec web sh -c 'echo "written by the container" > /usr/local/apache2/htdocs/note.txt'
step cat site/note.txt
step dockyard ps
step dockyard port web
step dockyard exec web sh -c 'echo "PID 1 here is: $(cat /proc/1/cmdline | tr "\\0" " ")"'
step dockyard top web
step dockyard logs web
step dockyard stop web
step dockyard rm web
# an image of our own: a page baked into httpd, built with the classic builder's cache
rm -rf baked && mkdir baked
printf '<h1>Built by dockyard</h1>\n' >baked/index.html
printf 'FROM httpd\nCOPY index.html /usr/local/apache2/htdocs/index.html\nRUN wc -c /usr/local/apache2/htdocs/index.html\n' \
  >baked/Dockerfile
step dockyard build -t my/site:1 baked
step dockyard build -t my/site:1 baked   # again: every step from the cache
step dockyard run -d --name baked -p "$port:80" my/site:1
step fetch "http://127.0.0.1:$port/"
step dockyard rm -f baked
step dockyard rmi my/site:1 httpd
cd - >/dev/null
