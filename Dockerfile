# One image for every role: web (daphne), worker and beat differ only by command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time; the settings need some secret and host for that step only.
RUN SECRET_KEY=collectstatic-only-not-used-at-runtime-0123456789abcdefghijklmnop ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput

# /srv/media belongs to shop before compose mounts the `media` volume there, so a new volume takes its owner.
RUN useradd --create-home shop && mkdir -p /srv/media && chown shop /srv/media
USER shop

# Every interface, so nginx (or `docker run -p`) reaches it; its other defaults are the settings' (shop/web.py).
ENV WEB_HOST=0.0.0.0 \
    WEB_PORT=8000
EXPOSE 8000
# Liveness of the web process (its default role): /healthz does no I/O (shop/health.py); compose asks /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["python", "-m", "shop.web"]
