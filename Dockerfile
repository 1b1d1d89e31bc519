# A chatd node. Defaults (config/docker.toml, copied to /etc/chatd/chatd.toml): one node on
# SQLite in /data, listening on 0.0.0.0:8765. The environment overrides every default, so the
# same image joins a cluster (see config/cluster/compose.yaml):
#   docker build -t chatd .
#   docker run -p 8765:8765 -v chatd-data:/data chatd
#   docker run -e CHATD_STORE__DB=postgresql://chatd@db:5432/chatd \
#       -e CHATD_STORE__PASSWORD_FILE=/run/secrets/pg_password \
#       -e CHATD_BROKER__URL=redis://redis:6379/0 -e CHATD_SERVER__NODE_ID=node-2 chatd
# Arguments replace the command: docker run chatd check-config --config /etc/chatd/chatd.toml
FROM python:3.11-slim
WORKDIR /opt/chatd
COPY pyproject.toml README.md ./
COPY chatd chatd
COPY protocol protocol
COPY clients clients
COPY loadtest loadtest
RUN pip install --no-cache-dir . \
    && useradd --system chatd && mkdir /data && chown chatd /data
COPY config/docker.toml /etc/chatd/chatd.toml
ENV PYTHONUNBUFFERED=1
USER chatd
WORKDIR /data
VOLUME /data
EXPOSE 8765
# Liveness only (docker restarts on it); load balancers check /readyz themselves.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CHATD_SERVER__PORT', '8765'), timeout=2)"]
# SIGTERM (docker stop) drains; give it more than drain_grace + drain_seconds (docker stop -t 30,
# compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatd"]
CMD ["serve", "--config", "/etc/chatd/chatd.toml"]
