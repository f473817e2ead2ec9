# One image for every Mailferry process; docker-compose.yml picks the command per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SMTP_LISTEN=0.0.0.0:2525 \
    WEB_LISTEN=0.0.0.0:8000

WORKDIR /srv/mailferry
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --home-dir /srv/mailferry mailferry \
    && mkdir -p var tls && chown -R mailferry var tls
USER mailferry

# The SMTP server listens on 2525 inside the container (no root needed); compose publishes it as 25.
EXPOSE 2525 8000
CMD ["gunicorn", "wsgi:app", "--bind", "0.0.0.0:8000", "--workers", "2"]
