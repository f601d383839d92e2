#!/usr/bin/env bash
# The GPU run: install the hub offline beside the machine's own CUDA PyTorch, start a hub
# and a GPU worker, run the gpu-marked tests, profile a model through the CLI on cuda:0,
# measure the profiler's fidelity there, and write a short report. Within 8 minutes.
#
#   deploy/gpu/run.sh [--wheels DIR] [--python PYTHON] [--work DIR] [REPORT_DIR]
#
# --wheels   the folder deploy/gpu/fetch-wheels.sh filled (default: .whl in the repository)
# --python   the Python that has torch (default: python3)
# --work     scratch: the environment, the hub's data (default: $TMPDIR/modelci-gpu-run)
# REPORT_DIR where gpu-run.md and the logs go (default: $OUT, else ./gpu-run-report)
#
# Nothing is downloaded: a fresh environment gets torch, numpy, onnx and onnxruntime (and
# what they require) from the given Python, lent without copying (deploy/gpu/beside.py),
# and everything else from the wheels folder. Without a CUDA GPU the same steps run on the
# CPU (a dry run) and the report says what was skipped. Exits non-zero if a step failed.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
wheels="$root/.whl"
python=python3
work="${TMPDIR:-/tmp}/modelci-gpu-run"
report="${OUT:-$PWD/gpu-run-report}"
while (($#)); do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) report="$1"; shift ;;
  esac
done
# A path to the Python made absolute (not resolved: a venv's python is a link out of it).
[[ $python == */* ]] && python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
mkdir -p "$report" && report="$(cd "$report" && pwd)"
cd "$root" || exit 2
wheels="$(cd "$wheels" 2>/dev/null && pwd)" || { echo "no wheels folder: run deploy/gpu/fetch-wheels.sh" >&2; exit 2; }
started=$SECONDS
deadline=$((SECONDS + 470)) # 8 minutes, less the time to stop and write the report
failed=0
rows=()
skipped=()

left() { echo $((deadline - SECONDS > 5 ? deadline - SECONDS : 5)); }
# step NAME LIMIT_S COMMAND...: run it with its output in NAME.log, at most LIMIT_S (or
# what is left of the 8 minutes), and add a row to the report.
step() {
  local name="$1" limit="$2" begun=$SECONDS code
  shift 2
  ((limit > $(left))) && limit=$(left)
  echo "== $name (at most ${limit} s)"
  if declare -F "$1" >/dev/null; then # one of the functions below, in a bash of its own
    timeout --kill-after=10 "$limit" bash -c "$(declare -f "$1"); $1" >"$report/$name.log" 2>&1
  else
    timeout --kill-after=10 "$limit" "$@" >"$report/$name.log" 2>&1
  fi
  code=$?
  local result="passed"
  if ((code == 124 || code == 137)); then
    result="**timed out** after ${limit} s"
  elif ((code != 0)); then
    result="**failed** (exit $code)"
  fi
  ((code != 0)) && failed=1
  last_seconds=$((SECONDS - begun))
  rows+=("| $name | $result | $last_seconds s |")
  echo "   $result in $((SECONDS - begun)) s"
  # (Not the tests' own summary: CI reads the last test runner's closing line as its.)
  [[ $name != tests ]] && tail -n 3 "$report/$name.log" | sed 's/^/   /'
  return $code
}

# Which run this is: a CUDA GPU torch can use, or the CPU dry run.
if ! probe="$("$python" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' 2>&1)"; then
  echo "$python has no usable torch: $probe" >&2
  exit 2
fi
read -r torch_version torch_cuda gpu <<<"$probe"
if [[ $gpu == True ]]; then
  mode=gpu
  gpus="$(nvidia-smi -L 2>/dev/null || "$python" -c 'import torch; print(torch.cuda.get_device_name(0))')"
else
  mode=cpu
  gpus="none: torch $torch_version (CUDA ${torch_cuda}) sees no CUDA GPU"
fi
echo "GPU run, $mode mode; torch $torch_version; GPUs: $gpus"

env="$work/env"
env_python="$env/bin/python"
export python here root wheels work env env_python mode
install() {
  set -euo pipefail
  if [[ -e $work && ! -e $work/.modelci-gpu-run ]]; then
    echo "$work is not this script's scratch folder: not emptied; name another with --work"
    return 1
  fi
  rm -rf "$work"
  mkdir -p "$work/src"
  touch "$work/.modelci-gpu-run"
  "$python" -m venv --without-pip "$env"
  # pip itself from the folder (a wheel runs as a zip), so no ensurepip is needed.
  local pip_wheel
  pip_wheel="$(ls "$wheels"/pip-*.whl | head -n 1)"
  # Only the wheels folder: no index, no configuration or variables pointing at one.
  unset $(compgen -e | grep '^PIP_') 2>/dev/null || true
  export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
  "$env_python" "$pip_wheel/pip" install --quiet --no-index --no-cache-dir "$pip_wheel"
  local site
  site="$("$env_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mapfile -t reused < <("$python" "$here/requirements.py" --reused)
  echo "lent from $python:"
  "$python" "$here/beside.py" view "$site" "${reused[@]}"
  # The hub is built from a copy of this tree (the tree is left as it is).
  tar -C "$root" --exclude=./.git --exclude=./.venv --exclude=./.whl --exclude=./.gl \
    --exclude=node_modules --exclude=__pycache__ --exclude=./build --exclude='*.egg-info' \
    --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache -cf - . |
    tar -C "$work/src" -xf -
  mapfile -t wanted < <("$python" "$here/requirements.py")
  "$env_python" -m pip install --no-index --no-cache-dir --find-links "$wheels" \
    --progress-bar off "$work/src" "${wanted[@]}"
  if command -v bwrap >/dev/null; then
    # Under bubblewrap the cage sees only the environment's own folders.
    echo "bubblewrap is here: the lent packages linked into the environment itself"
    "$python" "$here/beside.py" materialize "$site" "${reused[@]}" >/dev/null
  fi
  "$env_python" -c 'import modelci, torch, onnxruntime; print("installed: modelci beside torch", torch.__version__)'
}
if ! step install 240 install; then
  echo "the install failed: see $report/install.log" >&2
fi

hub_pid="" worker_pid=""
stop_services() {
  [[ -n $worker_pid ]] && kill -TERM "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null
  [[ -n $hub_pid ]] && kill -INT "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
  worker_pid="" hub_pid=""
}
trap stop_services EXIT

port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
hub="http://127.0.0.1:$port"
export hub
wait_ready='
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 90
while True:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
            print("hub ready:", answer.status, url)
            break
    except OSError as error:
        try:  # gone, or a zombie its parent (this script) has not reaped yet
            exited = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            exited = True
        if exited:
            sys.exit("the hub exited: see hub.log")
        if time.monotonic() > deadline:
            sys.exit(f"the hub did not answer /readyz: {error}")
        time.sleep(0.5)
'
worker_options=()
[[ $mode == cpu ]] && worker_options=(--window-seconds 0.1 --max-windows 4 --threads 1)
if [[ -x $env/bin/modelci ]]; then
  # The hub on its embedded database; its worker is started apart, as on a GPU host.
  MODELCI_WORKERS=0 "$env/bin/modelci" serve --port "$port" --data-dir "$work/hub" \
    >"$report/hub.log" 2>&1 &
  hub_pid=$!
fi
if [[ -n $hub_pid ]] && step hub-start 100 "$env_python" -c "$wait_ready" "$hub" "$hub_pid"; then
  "$env/bin/modelci" worker --server "$hub" ${worker_options[@]+"${worker_options[@]}"} \
    >"$report/worker.log" 2>&1 &
  worker_pid=$!
  hub_up=1
else
  hub_up=0
  skipped+=("the hub and worker, the CLI profile: the install or the hub's start failed")
fi

# The gpu-marked tests (each starts its own hub and worker); on the CPU they are skipped,
# each saying why.
if [[ -x $env/bin/pytest ]]; then
  # From the scratch folder: `python -m modelci…` (the tests' hubs and workers) would
  # find the repository's modelci/ folder first from its root.
  step tests 300 bash -c 'cd "$work" && exec "$env/bin/pytest" -c "$root/pyproject.toml" \
    --rootdir "$root" -m gpu "$root/tests/test_gpu.py" -p no:cacheprovider -rs -q'
  tests_code=$?
  rows[${#rows[@]} - 1]="| tests | $( ((tests_code == 0)) && echo passed || echo "**failed** (exit $tests_code)"): $(tail -n 1 "$report/tests.log") | $last_seconds s |"
  [[ $mode == cpu ]] && skipped+=("the gpu-marked tests (tests/test_gpu.py): no CUDA GPU, each skipped with its reason (tests.log)")
fi

# A model profiled through the CLI on the hub above: on cuda:0 and the CPU, or the CPU alone.
profile() {
  set -euo pipefail
  "$env_python" - "$work/net.pt" <<'EOF'
import sys, torch
from torch import nn
net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(16, 10)).eval()
torch.jit.trace(net, torch.randn(2, 3, 32, 32)).save(sys.argv[1])
EOF
  export MODELCI_SERVER="$hub"
  "$env/bin/modelci" register "$work/net.pt" --architecture GpuRunNet --no-convert \
    --input input:-1x3x32x32:FP32 --json >"$work/registered.json"
  local id devices=(--device cpu)
  id="$("$env_python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$work/registered.json")"
  [[ $mode == gpu ]] && devices=(--device cuda:0 --device cpu)
  "$env/bin/modelci" profile "$id" --batch 1 --batch 8 "${devices[@]}" --budget 90s
  "$env/bin/modelci" show "$id"
}
if ((hub_up)); then
  step profile 150 profile
fi
stop_services

# Fidelity: on the GPU, the profiler against torch.utils.benchmark on cuda:0 and the CPU
# benchmark as it is; on the CPU a smoke run of the GPU one only.
if [[ -x $env_python ]]; then
  if [[ $mode == gpu ]]; then
    step fidelity 150 "$env_python" "$here/gpu_fidelity.py" --device cuda:0 --rounds 3
    step fidelity-cpu 120 "$env_python" benchmarks/profiler_fidelity.py --rounds 2
  else
    step fidelity 60 "$env_python" "$here/gpu_fidelity.py" --device cpu --rounds 1 \
      --batch 1 --window-seconds 0.1
    skipped+=("the fidelity figures: no GPU; gpu_fidelity.py ran once on the CPU as a smoke test (its figures are not a measurement)")
    skipped+=("benchmarks/profiler_fidelity.py: CPU figures, measured apart (BENCHMARKS.md)")
  fi
fi

total=$((SECONDS - started))
{
  echo "# GPU run"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname), $total s in all."
  echo
  if [[ $mode == gpu ]]; then
    echo "**GPU run** on: $gpus"
  else
    echo "**CPU dry run**: no CUDA GPU ($gpus). Every step ran on the CPU; what needs a GPU is listed as skipped."
  fi
  echo
  echo "torch $torch_version (CUDA $torch_cuda) from \`$python\`; the hub installed offline from \`$wheels\` ($(ls "$wheels"/*.whl | wc -l) wheels, $(($(cat "$wheels"/*.whl | wc -c) / 1024 / 1024)) MiB) into \`$env\`; cage: $(command -v bwrap >/dev/null && echo bubblewrap || echo 'the weaker cage (no bubblewrap)')."
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  if ((${#skipped[@]})); then
    echo "## Skipped"
    echo
    printf -- '- %s\n' "${skipped[@]}"
    echo
  fi
  if [[ -f $report/tests.log ]]; then
    echo "## Tests"
    echo
    echo '```'
    grep -E '^(SKIPPED|FAILED|ERROR|PASSED)|passed|failed|skipped' "$report/tests.log" | tail -n 20
    echo '```'
    echo
  fi
  if [[ -f $report/profile.log ]]; then
    echo "## Profile through the CLI"
    echo
    echo '```'
    tail -n 40 "$report/profile.log"
    echo '```'
    echo
  fi
  for name in fidelity fidelity-cpu; do
    [[ -f $report/$name.log ]] || continue
    echo "## $name"
    echo
    echo '```'
    tail -n 12 "$report/$name.log"
    echo '```'
    echo
  done
  echo "Logs: install.log, hub.log, worker.log, tests.log, profile.log, fidelity*.log beside this file."
} >"$report/gpu-run.md"
echo "report: $report/gpu-run.md ($total s)"
if ((failed)); then
  echo "some steps failed: see the report" >&2
  exit 1
fi
