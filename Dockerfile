# syntax=docker/dockerfile:1
# daw-popular: a wheel built in one stage (its request path compiled by mypyc, see setup.py),
# installed into a venv, the venv copied into a slim, non-root runtime.
# Build: `docker build -t daw-popular .`
# Run: `docker run -p 8080:8080 -e DAW_POPULAR_UPSTREAM=http://upstream:8000 daw-popular`.
# Every option of `serve` is also an environment variable DAW_POPULAR_<OPTION> (see
# `docker run --rm daw-popular serve --help`).

# 3.11: Python 3.12 and 3.13 run a cold answer with 15-17% more instructions (README.md).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAW_POPULAR_COMPILE=1
# A C compiler for mypyc; only this stage has it.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the wheel is built from, so edits to tests or docs do not invalidate this layer.
COPY pyproject.toml setup.py README.md ./
COPY daw_popular ./daw_popular
# The same path in both stages: console scripts carry the venv's absolute interpreter path.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --find-links /wheels "daw-popular[redis,metrics]" \
 && /opt/venv/bin/pip uninstall --yes pip \
 && /opt/venv/bin/daw-popular --help >/dev/null \
 && /opt/venv/bin/python -c "import daw_popular, sys; sys.exit(not daw_popular.compiled())"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 daw \
 && useradd --system --uid 10001 --gid daw --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin daw
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# The slim image has no curl; the port follows DAW_POPULAR_PORT when it is set.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DAW_POPULAR_PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["daw-popular"]
CMD ["serve", "--host", "0.0.0.0"]
