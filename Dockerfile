# syntax=docker/dockerfile:1
# One image for both models: `app-sync` by default, `docker run IMAGE app-async` for asyncio.
#   docker build --build-arg VERSION=1.2.3 --build-arg COMMIT="$(git rev-parse HEAD)" -t python-service .
# Both stages must use the same base (the venv links to its Python). The tag is written out,
# not an ARG, so that Dependabot can bump both FROM lines together.

# --- build: Poetry turns poetry.lock into a venv at /opt/venv --------------------------
FROM python:3.13-slim AS build

ARG POETRY_VERSION=2.5.1
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    POETRY_NO_INTERACTION=1 \
    VIRTUAL_ENV=/opt/venv

# Poetry lives in its own venv, which the runtime stage never sees.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/poetry \
    && /opt/poetry/bin/pip install "poetry==${POETRY_VERSION}" \
    && python -m venv --without-pip "$VIRTUAL_ENV"

WORKDIR /src

# Dependencies first, from the lock file alone: a source change keeps this layer cached.
# Poetry installs into $VIRTUAL_ENV because it is set (poetry.toml's in-project .venv is
# deliberately not copied).
COPY pyproject.toml poetry.lock ./
RUN --mount=type=cache,target=/root/.cache/pypoetry \
    /opt/poetry/bin/poetry install --only main --no-root

# Then the package itself, as a wheel (`poetry install` would make an editable install
# that points back into /src).
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/poetry/bin/poetry build --format wheel --output /tmp/dist \
    && /opt/poetry/bin/pip --python "$VIRTUAL_ENV/bin/python" install --no-deps /tmp/dist/*.whl \
    && "$VIRTUAL_ENV/bin/python" -m compileall -q "$VIRTUAL_ENV/lib"

# --- runtime: the base image, the venv and a non-root user ---------------------------
FROM python:3.13-slim AS runtime

# Shown in logs, app_build_info and the labels. CI passes the release tag and the commit;
# "dev" marks a local build (APP_VERSION must not be empty, or the config is rejected).
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="python-service" \
      org.opencontainers.image.description="Python service template: sync or asyncio loop with metrics and health checks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"

# A fixed UID so Kubernetes `runAsNonRoot` can verify it without a passwd lookup.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

# Bytecode is compiled at build time; a read-only root filesystem could not store it.
# The heartbeat goes to /tmp, the one place that must stay writable (a tmpfs).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_HEARTBEAT_FILE=/tmp/app-heartbeat.json \
    APP_VERSION=${VERSION} \
    APP_COMMIT=${COMMIT}

# Empty on purpose: mount a config.yml here (./config.yml is read if present).
WORKDIR /app
USER 10001:10001
EXPOSE 8000

# The service writes the heartbeat every iteration (loop_sleep_seconds, default 5 s) and
# app-health judges it against the max age written in it, so a 10 s interval is enough.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/app-health"]

# Exec form: the service is PID 1 and receives SIGTERM itself; any command overrides it.
CMD ["app-sync"]
