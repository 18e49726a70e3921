# CoreDNS as the upstream image runs it: non-root, with the file capability to bind port 53
# (without it the cluster DNS never answers and pods cannot resolve Services).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY coredns /coredns
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /coredns \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
USER 65532:65532
ENTRYPOINT ["/coredns"]
