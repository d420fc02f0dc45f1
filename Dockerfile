# The control plane image: web (bin/start-web, the default command), worker and beat
# (docker-compose.yml gives their commands), migrate (one-shot).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, from the lock file: this layer is rebuilt only when requirements.lock
# changes, not on every source edit.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY . .

# Static files: hashed names and precompressed gzip/brotli copies (WhiteNoise serves them).
# The values below only let settings load for collectstatic; the running container gets the
# real ones from the environment.
RUN DEBUG=0 SECRET_KEY=collectstatic-only METRICS_TOKEN=collectstatic-only \
    python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --uid 1000 --home-dir /app molam \
    && mkdir -p /app/var \
    && chown molam /app/var
USER molam

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 CMD ["bin/healthcheck", "web"]
CMD ["bin/start-web"]
