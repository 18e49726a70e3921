# The in-cluster broker of the kind tier (manifests/rabbitmq-dev) from Debian's rabbitmq-server,
# uid/gid 999 and the management plugin like the official image the manifest names.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN groupadd --system --gid 999 rabbitmq \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/rabbitmq --no-create-home rabbitmq \
 && apt-get update && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 && rabbitmq-plugins enable --offline rabbitmq_management \
 && mkdir -p /etc/rabbitmq/conf.d /var/lib/rabbitmq /var/log/rabbitmq \
 && chown -R 999:999 /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
ENV RABBITMQ_LOGS=- HOME=/var/lib/rabbitmq
USER 999:999
EXPOSE 5672 15672
CMD ["rabbitmq-server"]
