#!/usr/bin/env bash
# The Kubernetes test toolchain: etcd, the control plane, kubelet and kubectl built from Go
# modules, the pulumi-resource-kubernetes plugin, cert-manager (its binaries and CRDs), and
# Debian's containerd. Used by the
# `kubernetes` runtime's tests and `deploy-mcp cluster up`; `npm start` never waits for it.
# Idempotent: each binary is built once per machine into the tools cache (cold: about an hour
# on 2 cores; warm: seconds).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

step "Debian packages for the cluster (containerd, runc, CNI plugins)"
apt_packages "${KUBERNETES_APT_PACKAGES[@]}"

# ---------------------------------------------------------------------------
step "etcd v$ETCD_VERSION"
dir="$CACHE/etcd-$ETCD_VERSION"
if [[ ! -x "$dir/etcd" ]]; then
  require_go "etcd"
  echo "    building from Go modules (cold: ~5 min)"
  # The etcd main package is the server module's root.
  go_tool_build "$dir" "$KUBERNETES_GO_DIRECTIVE" "require go.etcd.io/etcd/server/v3 v$ETCD_VERSION" \
    "-X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" go.etcd.io/etcd/server/v3
  # go build names a /vN module root after the element before it (server): rename it.
  for f in "$dir"/*; do [[ "$f" == "$dir/etcd" ]] || mv "$f" "$dir/etcd"; done
fi
link_tool "$dir/etcd" etcd
done_step "$("$BIN/etcd" --version | head -1)"

# ---------------------------------------------------------------------------
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
step "Kubernetes v$KUBERNETES_VERSION (${KUBE_BINARIES[*]})"
dir="$CACHE/kubernetes-$KUBERNETES_VERSION"
have_all=1
for b in "${KUBE_BINARIES[@]}"; do [[ -x "$dir/$b" ]] || have_all=0; done
if ((!have_all)); then
  require_go "Kubernetes"
  echo "    building from Go modules (cold: ~40 min on 2 cores)"
  # k8s.io/kubernetes replaces its staging modules with local paths, which a dependent module
  # cannot see: point each at its published version instead.
  gomod="$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | awk -F'"' '$2 == "GoMod" {print $4}')"
  staging="v0.${KUBERNETES_VERSION#1.}"
  mod_lines="require k8s.io/kubernetes v$KUBERNETES_VERSION
$(awk -v v="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\// {print "replace " $1 " => " $1 " " v}' "$gomod")"
  minor="${KUBERNETES_VERSION#1.}" && minor="${minor%%.*}"
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  pkgs=()
  for b in "${KUBE_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  go_tool_build "$dir" "$KUBERNETES_GO_DIRECTIVE" "$mod_lines" "$ldflags" "${pkgs[@]}"
fi
for b in "${KUBE_BINARIES[@]}"; do link_tool "$dir/$b" "$b"; done
done_step "$("$BIN/kube-apiserver" --version)"

# ---------------------------------------------------------------------------
step "pulumi-resource-kubernetes v$PULUMI_KUBERNETES_VERSION"
dir="$CACHE/pulumi-resource-kubernetes-$PULUMI_KUBERNETES_VERSION"
if [[ ! -x "$dir/pulumi-resource-kubernetes" ]]; then
  require_go "the Kubernetes provider plugin"
  echo "    building from Go modules (cold: ~35 min on 2 cores)"
  module="github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_KUBERNETES_MODULE_VERSION"
  PROVIDER_SRC="$(go mod download -json "$module" | awk -F'"' '$2 == "Dir" {print $4}')/cmd/pulumi-resource-kubernetes"
  export PROVIDER_SRC
  # The module zip lacks the generated schema-embed.json: copy the command into our own module
  # and generate it the way the provider's generate.go does, stamped with our version.
  prepare_provider() {
    mkdir -p cmd/pulumi-resource-kubernetes gen
    cp "$PROVIDER_SRC/main.go" cmd/pulumi-resource-kubernetes/
    cp "$PROVIDER_SRC/schema.json" "$PROVIDER_SRC/terraform-mapping.json" cmd/pulumi-resource-kubernetes/
    sed '/^\/\/go:build ignore/d; /^\/\/ +build ignore/d' "$PROVIDER_SRC/generate.go" >gen/main.go
    chmod -R u+w cmd gen
    GOFLAGS=-mod=mod go mod tidy
    (cd cmd/pulumi-resource-kubernetes && VERSION="$PULUMI_KUBERNETES_VERSION" go run ../../gen)
    rm -rf gen cmd/pulumi-resource-kubernetes/schema.json cmd/pulumi-resource-kubernetes/terraform-mapping.json
  }
  GO_TOOL_PREPARE=prepare_provider go_tool_build "$dir" "$KUBERNETES_GO_DIRECTIVE" \
    "require github.com/pulumi/pulumi-kubernetes/provider/v4 $PULUMI_KUBERNETES_MODULE_VERSION
replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e" \
    "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
    ./cmd/pulumi-resource-kubernetes
fi
link_tool "$dir/pulumi-resource-kubernetes" pulumi-resource-kubernetes
done_step "built, v$PULUMI_KUBERNETES_VERSION"

# ---------------------------------------------------------------------------
CERT_MANAGER_BINARIES=(controller webhook cainjector)
step "cert-manager v$CERT_MANAGER_VERSION (${CERT_MANAGER_BINARIES[*]}, CRDs)"
# Keyed by our mains too: a change to one rebuilds the binaries.
dir="$CACHE/cert-manager-$CERT_MANAGER_VERSION-$(cat "$ROOT"/scripts/cert-manager/*/main.go | sha256sum | cut -c1-12)"
have_all=1
for b in "${CERT_MANAGER_BINARIES[@]}"; do [[ -x "$dir/$b" ]] || have_all=0; done
[[ -s "$dir/crds/cert-manager.io_certificates.yaml" ]] || have_all=0
if ((!have_all)); then
  require_go "cert-manager"
  echo "    building from Go modules (cold: ~10 min on 2 busy cores)"
  module="github.com/cert-manager/cert-manager@v$CERT_MANAGER_VERSION"
  CERT_MANAGER_SRC="$(go mod download -json "$module" | awk -F'"' '$2 == "Dir" {print $4}')"
  export CERT_MANAGER_SRC
  # Our mains (scripts/cert-manager/<name>/main.go) import the module's internal packages, which
  # only a module under its path may: the tools module is named under it, as upstream's cmd/* are.
  prepare_cert_manager() {
    for b in "${CERT_MANAGER_BINARIES[@]}"; do
      mkdir -p "cmd/$b" && cp "$ROOT/scripts/cert-manager/$b/main.go" "cmd/$b/"
    done
  }
  pkgs=()
  for b in "${CERT_MANAGER_BINARIES[@]}"; do pkgs+=("./cmd/$b"); done
  GO_TOOL_MODULE=github.com/cert-manager/cert-manager/deploy-mcp GO_TOOL_PREPARE=prepare_cert_manager \
    go_tool_build "$dir" "$CERT_MANAGER_GO_DIRECTIVE" "require github.com/cert-manager/cert-manager v$CERT_MANAGER_VERSION" \
    "-X github.com/cert-manager/cert-manager/pkg/util.AppVersion=v$CERT_MANAGER_VERSION" "${pkgs[@]}"
  # The CRDs the layer applies: the module's own deploy/crds, as they are (the Helm chart's
  # crd-*.yaml templates carry the same specs); and the chart's RBAC templates, which the
  # layer's roles are checked against (test/kubernetes/cert-manager.test.ts).
  mkdir -p "$dir/crds.partial" "$dir/chart-rbac"
  cp "$CERT_MANAGER_SRC"/deploy/crds/*.yaml "$dir/crds.partial/"
  cp "$CERT_MANAGER_SRC"/deploy/charts/cert-manager/templates/{rbac,webhook-rbac,cainjector-rbac}.yaml "$dir/chart-rbac/"
  chmod u+w "$dir"/crds.partial/*.yaml "$dir"/chart-rbac/*.yaml
  rm -rf "$dir/crds" && mv "$dir/crds.partial" "$dir/crds"
fi
for b in "${CERT_MANAGER_BINARIES[@]}"; do link_tool "$dir/$b" "cert-manager-$b"; done
ln -sfn "$dir" "$TOOLS/cert-manager"
done_step "built, v$CERT_MANAGER_VERSION ($(ls "$dir/crds" | wc -l) CRDs)"

echo "setup-kubernetes: done in $(($(date +%s) - SETUP_START))s"
