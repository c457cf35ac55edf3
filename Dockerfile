# syntax=docker/dockerfile:1
# jobqueue container image: one image, every role. The role comes from the command:
#   docker run IMAGE                      -> jobqueue --role=worker (the default CMD)
#   docker run IMAGE --role=reaper        -> the reaper
#   docker run IMAGE admin stats --json   -> an admin command
# The config is read from /etc/jobqueue/config.yaml ($JOBQUEUE_CONFIG); mount your own over it
# or override single keys with JOBQUEUE_<SECTION>__<KEY> environment variables.

ARG PYTHON_VERSION=3.11

# --- builder: turn the source into wheels (jobqueue and every dependency) -------------------
FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY jobqueue ./jobqueue
RUN python -m pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed into a slim image, run as an unprivileged user -----------
FROM python:${PYTHON_VERSION}-slim AS runtime

LABEL org.opencontainers.image.title="jobqueue" \
      org.opencontainers.image.description="Redis-backed at-least-once file-processing job queue" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    JOBQUEUE_CONFIG=/etc/jobqueue/config.yaml

# A fixed numeric uid/gid so volume ownership and Kubernetes runAsNonRoot checks are stable.
RUN groupadd --system --gid 10001 jobqueue \
 && useradd --system --uid 10001 --gid jobqueue --no-create-home \
        --home-dir /var/lib/jobqueue --shell /usr/sbin/nologin jobqueue \
 && install -d -o jobqueue -g jobqueue -m 0750 /var/lib/jobqueue /var/lib/jobqueue/ledger /data \
 && install -d -o root -g jobqueue -m 0750 /etc/jobqueue

# Install from the builder's wheels only (no index, no compiler in this image); the wheels are
# bind-mounted for this one step, so they never become a layer of the final image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels jobqueue \
 && jobqueue --version

# The default config targets the compose network (redis://redis:6379/0); mount your own.
COPY --chown=root:jobqueue --chmod=0640 deploy/config.yaml /etc/jobqueue/config.yaml

USER 10001:10001
WORKDIR /var/lib/jobqueue

# /metrics, /healthz, /readyz (observability.metrics_port).
EXPOSE 9091

# /healthz answers 200 while the process runs. python:slim has no curl: use urllib. The port
# follows JOBQUEUE_OBSERVABILITY__METRICS_PORT when that override is set; metrics_port 0
# (endpoint off) makes the container report unhealthy, so keep the endpoint on in containers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('JOBQUEUE_OBSERVABILITY__METRICS_PORT', '9091'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

# SIGTERM starts a graceful drain (stop claiming, finish within worker.shutdown_grace, release
# the rest). Give the container longer than shutdown_grace to stop: docker stop -t 45,
# compose stop_grace_period: 45s, Kubernetes terminationGracePeriodSeconds: 45.
STOPSIGNAL SIGTERM

ENTRYPOINT ["jobqueue"]
CMD ["--role=worker"]
