#!/usr/bin/env bash
# Start the built bundle on a real X server (Xvfb), time until its window is mapped, screenshot it.
#
#   xvfb-run -a -s "-screen 0 1280x800x24" packaging/check_bundle.sh FOLDER [OUT.png] [SETTLE_S]
#
# Why: an offscreen start proves little about a bundle (no xcb plugin, no system X libraries);
# this is the check behind README "Packaging". Needs xwininfo (x11-utils) and the .venv (the
# screenshot is grabbed by PySide6 from the venv, not from the bundle). Exit 1 when the app exits
# or maps no window within 120 s.
set -uo pipefail
cd "$(dirname "$0")/.."
folder=${1:?usage: check_bundle.sh FOLDER [OUT.png] [SETTLE_S]}
out=${2:-packaged-app.png}
settle=${3:-8}
log=$(mktemp)

t0=$(date +%s.%N)
QT_QPA_PLATFORM=xcb dist/peel-gui/peel-gui "$folder" >"$log" 2>&1 &
pid=$!
mapped=""
for _ in $(seq 1 1200); do
    if xwininfo -root -tree 2>/dev/null | grep -q '("peel-gui" "Peel")'; then
        mapped=$(echo "$(date +%s.%N) - $t0" | bc)
        break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $mapped ]]; then
    echo "check_bundle: no Peel window (app log below)" >&2
    cat "$log" >&2
    kill "$pid" 2>/dev/null
    exit 1
fi
echo "check_bundle: window mapped after ${mapped} s"
sleep "$settle"
OUT="$out" .venv/bin/python - <<'PY'
import os
import sys

from PySide6.QtGui import QGuiApplication

app = QGuiApplication(sys.argv)
img = QGuiApplication.primaryScreen().grabWindow(0)
assert img.save(os.environ["OUT"]), "screenshot not written"
print(f"check_bundle: {img.width()}x{img.height()} screenshot in {os.environ['OUT']}")
PY
kill -0 "$pid" 2>/dev/null && echo "check_bundle: app still running after ${settle} s (RSS $(ps -o rss= -p "$pid") kB)"
kill "$pid"
wait "$pid" 2>/dev/null
echo "check_bundle: app log:"
cat "$log"
rm -f "$log"
