FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY molam_upgrades molam_upgrades
COPY backups backups
COPY rollbacks rollbacks
COPY rollouts rollouts
COPY molam_agent molam_agent
COPY templates templates
COPY static static
COPY manage.py ./
RUN pip install --no-cache-dir . && \
    DEBUG=1 python manage.py collectstatic --noinput
RUN useradd --system --uid 1000 molam && mkdir -p /app/var && chown molam /app/var
USER molam
EXPOSE 8000
