# forkd's container image: forkd, forkctl and the example app on Debian 12.
#
#   docker build -t forkd:0.1.0 .
#
# Stage "build" runs the same two scripts as the README (the tests run them
# too: tests/integration/test_k8s_image.py). The runtime stage holds only
# the shared libraries forkd and forkctl load, python3 for the example app,
# and a non-root user (uid 10001, the chart's runAsUser). No HEALTHCHECK:
# Kubernetes probes /livez, /readyz and /startupz on port 9091 instead.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN BUILD_DIR=/src/build scripts/build.sh

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libc-ares2 libre2-9 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libnghttp2-14 \
      libssl3 zlib1g libstdc++6 \
      python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 forkd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin forkd
COPY --from=build /src/build/forkd /src/build/forkctl /usr/local/bin/
COPY deploy/example-app/app.py /opt/forkd/example-app/app.py
USER 10001:10001
EXPOSE 8000 9090 9091
STOPSIGNAL SIGTERM
ENTRYPOINT ["forkd"]
CMD ["--bind=0.0.0.0:8000", "--upstream=unix:/run/forkd/app.sock"]
