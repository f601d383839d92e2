#!/usr/bin/env bash
# Fetch, on a machine with network, the wheels deploy/gpu/run.sh installs offline.
#
#   deploy/gpu/fetch-wheels.sh [--this-python] [DIR]
#
# DIR (default .whl, beside this repository's pyproject.toml) gets every package the hub,
# its worker and tests/test_gpu.py need (deploy/gpu/requirements.py reads them from
# pyproject.toml), except torch and what is taken from beside it on the GPU machine
# (numpy, onnx, onnxruntime and torch's own requirements: `requirements.py --reused`).
# By default the wheels are for the GPU machine: CPython 3.12 on x86-64 Linux
# (manylinux); --this-python fetches them for the Python running this script instead
# (CI's dry run). The folder must stay within 64 MiB: the script fails beyond that.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

target=(--python-version 3.12 --implementation cp --abi cp312
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64
  --platform manylinux2010_x86_64 --platform manylinux_2_5_x86_64
  --platform manylinux1_x86_64)
folder="$root/.whl"
for argument in "$@"; do
  case "$argument" in
    --this-python) target=() ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "unknown option $argument" >&2; exit 2 ;;
    *) folder="$argument" ;;
  esac
done

mkdir -p "$folder"
rm -f "$folder"/*.whl
mapfile -t wanted < <("$python" "$here/requirements.py" --build)
started=$SECONDS
# Wheels only, never an sdist: nothing is built on the GPU machine but the hub itself.
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  ${target[@]+"${target[@]}"} --dest "$folder" "${wanted[@]}"

# What the GPU machine has beside torch is not carried (the resolver fetched it as a
# dependency of the rest).
mapfile -t left_out < <("$python" "$here/requirements.py" --left-out)
for name in "${left_out[@]}"; do
  pattern="$(echo "$name" | tr '-' '_')"
  find "$folder" -maxdepth 1 -iname "${pattern}-[0-9]*.whl" -delete
done

bytes=$(cat "$folder"/*.whl | wc -c)
count=$(ls "$folder"/*.whl | wc -l)
echo "fetched $count wheels, $((bytes / 1024 / 1024)) MiB, into $folder in $((SECONDS - started)) s"
if ((bytes > 64 * 1024 * 1024)); then
  echo "over 64 MiB: the GPU machine takes at most 64 MiB of wheels" >&2
  exit 1
fi
