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

RUN useradd --create-home shop
USER shop

EXPOSE 8000
# A listen backlog of 2048 (twisted's default is 50) and a 30 s connect timeout (daphne's is 5) so a reconnect
# storm after a deploy waits in line instead of being dropped or refused (docs/reliability.md, 7);
# WEBSOCKET_LIFETIME is also the settings' (through sh, and exec so daphne gets the signals).
CMD ["sh", "-c", "exec python -m shop.web -e tcp:port=8000:interface=0.0.0.0:backlog=2048 --websocket_timeout ${WEBSOCKET_LIFETIME:-86400} --websocket_connect_timeout ${WEBSOCKET_CONNECT_TIMEOUT:-30} shop.asgi:application"]
