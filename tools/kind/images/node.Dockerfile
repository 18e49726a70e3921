# The kind node image, from Debian packages and binaries built from the Go module proxy.
# kind's own `kind build node-image` cannot be used here: it pulls its base and kindnetd from a
# registry and drives containerd 2's ctr. This follows kind's images/base/Dockerfile instead, with
# Debian bookworm's systemd, containerd 1.6, runc 1.1 and CNI plugins, and kind's own files from
# the kind module (kind-files/). The control-plane images are preloaded afterwards by build.sh.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY kind-files/usr/local/bin/clean-install /usr/local/bin/clean-install
RUN chmod 0755 /usr/local/bin/clean-install \
 && DEBIAN_FRONTEND=noninteractive clean-install \
      systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz e2fsprogs bash ca-certificates curl jq procps \
      containerd runc containernetworking-plugins
# kind's files after the packages, so they replace Debian's conffiles (containerd's config.toml).
COPY kind-files/ /
RUN chmod 0755 /usr/local/bin/* /kind /kind/bin /kind/bin/* \
 && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
 && ln -sf /usr/lib/systemd/systemd /sbin/init \
 && ln -s /usr/bin/containerd /usr/local/bin/containerd \
 && mkdir -p /opt/cni /etc/cni/net.d /etc/kubernetes/manifests && ln -s /usr/lib/cni /opt/cni/bin \
 && ctr oci spec \
      | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
      | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
 && systemctl mask systemd-binfmt.service systemd-sysctl.service
# Differences from kind's config, both for hosts like this one:
# - containerd may not lower a container's oom_score_adj (that needs CAP_SYS_RESOURCE, which a
#   host may withhold), as when kind runs rootless;
# - the sandbox (pause) image is the one this kubeadm asks for, preloaded.
ARG PAUSE_IMAGE
RUN sed -i -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
      -e "s#sandbox_image = .*#sandbox_image = \"${PAUSE_IMAGE}\"#" /etc/containerd/config.toml \
 && grep -q 'restrict_oom_score_adj = true' /etc/containerd/config.toml
# No kindnetd (it is not on the Go module proxy): one node, one bridge (clusters run with
# networking.disableDefaultCNI, tools/kind/cluster.yaml).
COPY node-files/10-bridge.conflist /etc/cni/net.d/10-bridge.conflist
COPY node-files/itl-node-entrypoint /usr/local/bin/itl-node-entrypoint
ARG K8S_VERSION
COPY bin/kubelet bin/kubeadm bin/kubectl /usr/bin/
RUN echo "${K8S_VERSION}" > /kind/version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/itl-node-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init"]
