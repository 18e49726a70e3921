# One Kubernetes component (kube-apiserver, kube-controller-manager, kube-scheduler, etcd) as
# kubeadm's static pods run it: the binary on PATH. Built from the Go module proxy.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ARG BIN
COPY ${BIN} /usr/local/bin/${BIN}
