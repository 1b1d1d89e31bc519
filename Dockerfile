# One chatd node on the embedded default (SQLite in /data). Build: docker build -t chatd .
# Run: docker run -p 8765:8765 -v chatd-data:/data chatd
FROM python:3.11-slim
WORKDIR /opt/chatd
COPY pyproject.toml README.md ./
COPY chatd chatd
COPY protocol protocol
COPY clients clients
COPY loadtest loadtest
RUN pip install --no-cache-dir . && useradd --system chatd && mkdir /data && chown chatd /data
USER chatd
EXPOSE 8765
# Listen on all interfaces inside the container; SIGTERM (docker stop) drains cleanly.
ENTRYPOINT ["chatd", "serve", "--host", "0.0.0.0", "--db", "/data/chatd.db"]
