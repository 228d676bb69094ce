# The image of a docker work pool (python -m deployments.remote --pool-type docker --image <this image>):
# the locked environment from uv.lock, driftgate's code, the s3 extra for an object-store artifact_store.
#   docker build -t registry.example/driftgate:$(git rev-parse --short HEAD) .
# State is not in the image: DRIFTGATE_STORE_URL (PostgreSQL), DRIFTGATE_ARTIFACT_STORE (object store) and
# DRIFTGATE_HOME (a mounted volume) come from the deployment's job variables (see deployments/remote.py).
FROM python:3.11-slim
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    DO_NOT_TRACK=1 NML_DISABLE_USAGE_LOGGING=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
    WANDB_ERROR_REPORTING=false WANDB__DISABLE_STATS=true WANDB__DISABLE_MACHINE_INFO=true
WORKDIR /opt/driftgate
# Dependencies first (a layer that changes only with the lock), then the code.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra s3 --no-install-project
COPY tasks tasks
COPY flows flows
COPY driftgate driftgate
COPY deployments deployments
COPY prefect.yaml ./
RUN uv sync --frozen --no-dev --extra s3
ENV PATH=/opt/driftgate/.venv/bin:$PATH
