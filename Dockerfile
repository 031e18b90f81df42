# datamill's container image: `datamill serve` (the API) by default, `worker` or `migrate`
# as the command. Build from the repository's root:
#
#   docker build -t datamill:0.1.0 .
#   docker build -t datamill:0.1.0-embeddings --build-arg EXTRAS=embeddings .
#
# EXTRAS lists the optional extras to install, comma-separated (`embeddings`: near-duplicate
# detection; `export`: Parquet exports). See docs/operations.md#deployment.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: wheels of datamill and every dependency ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY datamill ./datamill
RUN python -m pip wheel --wheel-dir /wheels ".${EXTRAS:+[${EXTRAS}]}"

# -- runtime: the wheels installed into a slim image, run as an unprivileged user ------------
FROM ${PYTHON_IMAGE} AS runtime
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    DATAMILL_HOME=/var/lib/datamill \
    DATAMILL_HOST=0.0.0.0 \
    DATAMILL_PORT=8000
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels "datamill${EXTRAS:+[${EXTRAS}]}"
# A fixed uid, so orchestrators can check runAsNonRoot; the state directory (a SQLite store,
# when no DATAMILL_DATABASE_URL is given) is its own, 0700 as datamill makes it.
RUN groupadd --system --gid 10001 datamill \
    && useradd --system --uid 10001 --gid datamill --home-dir /var/lib/datamill \
       --shell /usr/sbin/nologin datamill \
    && install -d -o datamill -g datamill -m 0700 /var/lib/datamill
VOLUME ["/var/lib/datamill"]
WORKDIR /var/lib/datamill
USER 10001:10001
EXPOSE 8000
# Readiness of the API (a worker container serves no HTTP: its compose service or pod turns
# this off). The slim image has no curl; urlopen fails on a 503.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('DATAMILL_PORT', '8000'), timeout=4)"
ENTRYPOINT ["datamill"]
CMD ["serve"]
