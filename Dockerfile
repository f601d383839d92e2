# ModelCI Hub: the server (and its profiling/conversion worker) against MODELCI_MONGODB_URL.
#   docker build -t modelci .                               # CPU
#   docker build -t modelci-gpu --build-arg TORCH_VARIANT=cu128 .   # CUDA build of torch,
#                                                           # onnxruntime-gpu
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MODELCI_HOST=0.0.0.0 \
    MODELCI_PORT=8000 \
    MODELCI_DATA_DIR=/data

# bubblewrap: the cage uploaded models are loaded and run in (modelci/cage/runner.py). It needs
# user namespaces: Docker's default seccomp profile refuses them, so run workers with
# `--security-opt seccomp=unconfined` (or a profile that allows unshare/clone of user
# namespaces); without them the worker falls back to the weaker cage and says so.
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY modelci ./modelci
RUN pip install --extra-index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" ".[profiling]" \
 && if [ "${TORCH_VARIANT}" != "cpu" ]; then \
      pip uninstall -y onnxruntime && pip install onnxruntime-gpu; \
    fi

RUN useradd --system --create-home modelci && mkdir -p /data && chown modelci /data
USER modelci
VOLUME /data
EXPOSE 8000

# Listening beyond loopback, auth is on: create tokens with
#   docker exec <container> modelci token create --name ci --scope write
# The embedded database is left out of the image: set MODELCI_MONGODB_URL.
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["modelci", "serve"]
