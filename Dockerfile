# crmpulse in a container (the Kubernetes manifests and compose file use it).
# Build: docker build -t crmpulse:0.1.0 .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY crmpulse crmpulse
COPY loadtests loadtests
COPY probes probes
COPY dashboards dashboards
COPY alerts alerts
COPY deploy deploy
# crmpulse/probes etc. are symlinks to the folders above; the installed package holds real files
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home crmpulse
USER 10001
EXPOSE 9687 9688 8089 5557
ENTRYPOINT ["crmpulse"]
CMD ["--help"]
