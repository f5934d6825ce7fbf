# syntax=docker/dockerfile:1
# The Sebaya worker image: `docker build -t sebaya .` (docker-compose.yml does it for you).
# Two stages so the final image holds the installed package, not the source tree or build tools.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, read from pyproject.toml alone: this layer stays cached until the
# dependency list changes, instead of being rebuilt on every code edit.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/pyproject.toml

COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels

# Never run the worker as root.
RUN useradd --system --uid 10001 --create-home --shell /usr/sbin/nologin sebaya
USER sebaya
WORKDIR /home/sebaya

# Logs are JSON lines for the container runtime; Compose passes the service locations.
ENV SEBAYA_LOG_FORMAT=json
# SIGTERM (docker stop) shuts the worker down gracefully; see worker.GRACEFUL_SHUTDOWN.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "worker"]
