# syntax=docker/dockerfile:1
# Multi-stage: build a wheel and its dependencies in one stage, run as a non-root user in another.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY providers ./providers
COPY audio ./audio
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels '.[silero]' \
 && pip download --no-cache-dir --no-deps --dest /wheels silero-vad

FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 slotline
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'slotline[silero]' \
 && pip install --no-cache-dir --no-index --no-deps --find-links /wheels silero-vad \
 && rm -rf /wheels
COPY config /etc/slotline
USER slotline
WORKDIR /home/slotline
EXPOSE 8080
# Secrets (TWILIO_AUTH_TOKEN, vendor keys) come from the environment at run time, never the image.
CMD ["slotline", "serve", "--config", "/etc/slotline/slotline.yaml", "--host", "0.0.0.0", "--port", "8080"]
