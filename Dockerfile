# forkd's container image: forkd, forkctl and the example app on Debian 12,
# and forkd's relocatable bundle for app mode.
#
#   docker build -t forkd:0.1.0 .
#   docker build --target bundle -o type=local,dest=out .   # just the bundle
#
# Stage "build" runs the same scripts as the README: install-deps, build and
# bundle (the tests run them too: tests/integration/test_k8s_image.py).
# Stage "bundle" is the relocatable bundle alone. The runtime stage holds only
# the shared libraries forkd and forkctl load, python3 for the example app,
# the bundle at /opt/forkd/bundle (for the chart's app mode and COPY --from),
# and a non-root user (uid 10001, the chart's runAsUser). No HEALTHCHECK:
# Kubernetes probes /livez, /readyz and /startupz on port 9091 instead.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN BUILD_DIR=/src/build scripts/build.sh
RUN BUILD_DIR=/src/build scripts/bundle.sh /src/build/forkd-bundle

# The relocatable bundle alone (scripts/bundle.sh): bin/forkd, bin/forkctl
# and lib/ with every library they load except glibc's, found through
# $ORIGIN. It runs in any glibc image (glibc as new as Debian 12's, 2.36;
# MANIFEST says) whatever else is installed there. To run your app in app
# mode from your own image, copy it from the forkd image:
#
#   FROM python:3.12-slim-bookworm
#   COPY --from=forkd:0.1.0 /opt/forkd/bundle /opt/forkd
#   COPY app.py /app/
#   ENTRYPOINT ["/opt/forkd/bin/forkd", "--bind=0.0.0.0:8000", "--workers=4", "--"]
#   CMD ["python3", "/app/app.py", "--socket", "{socket}"]
#
# The Helm chart's app mode does the same at pod start: an init container
# from this image copies /opt/forkd/bundle into an emptyDir.
FROM scratch AS bundle
COPY --from=build /src/build/forkd-bundle /opt/forkd/bundle

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
COPY --from=bundle /opt/forkd/bundle /opt/forkd/bundle
COPY deploy/example-app/app.py /opt/forkd/example-app/app.py
USER 10001:10001
EXPOSE 8000 9090 9091
STOPSIGNAL SIGTERM
ENTRYPOINT ["forkd"]
CMD ["--bind=0.0.0.0:8000", "--upstream=unix:/run/forkd/app.sock"]
