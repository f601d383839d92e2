# ModelCI Hub server image: installs the package and runs `modelci serve` against
# MODELCI_MONGODB_URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MODELCI_HOST=0.0.0.0 \
    MODELCI_PORT=8000 \
    MODELCI_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY modelci ./modelci
COPY schema ./schema
COPY server ./server
COPY profiling ./profiling
RUN pip install .

RUN useradd --system --create-home modelci && mkdir -p /data && chown modelci /data
USER modelci
VOLUME /data
EXPOSE 8000

# Point MODELCI_MONGODB_URL at your MongoDB; without it the server would need the
# embedded database, which this image leaves out (pip install '.[embedded]' to add it).
HEALTHCHECK CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/readyz'); sys.exit(0)"
CMD ["modelci", "serve"]
