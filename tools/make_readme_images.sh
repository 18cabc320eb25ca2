#!/usr/bin/env bash
# Regenerate the pictures README.md shows, with the commands it documents.
#   bash tools/make_readme_images.sh        (about two minutes on two cores)
# Needs the project installed (.venv) and, for the report screenshot, Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
optarena=.venv/bin/optarena
images=docs/images
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$optarena trajectories --function rosenbrock --steps 500 --out "$images/rosenbrock.png"
$optarena nqm --out "$images/nqm.png"
$optarena landscape --workload digits-mlp --optimizers sgd,adam,radam --grid 41 --log --out "$images/landscape.png"
$optarena race --workload digits-mlp --optimizers sgd,momentum,adam,adamw,radam,lamb,ranger,adabound \
    --trials 8 --seeds 3 --db "$work/runs.sqlite"
$optarena report --db "$work/runs.sqlite" --out "$work/report.html"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$work/profile" --hide-scrollbars \
    --window-size=1100,1320 --screenshot="$images/report.png" "file://$work/report.html"
ls -l "$images"
