# Helpers shared by the setup scripts (sourced; expects ROOT to be set).
# Tools land in ./.tools (git-ignored); heavy builds are kept in a machine-wide cache
# (DEPLOY_MCP_TOOLS_CACHE, default ~/.cache/deploy-mcp) so a fresh clone reuses them.
# shellcheck shell=bash

# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"

TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
CACHE="${DEPLOY_MCP_TOOLS_CACHE:-$HOME/.cache/deploy-mcp}"
mkdir -p "$BIN" "$CACHE"
export PATH="$TOOLS/node/bin:$BIN:$PATH"

SETUP_START=$(date +%s)
CURRENT_STEP=""
on_error() {
  local code=$?
  echo "setup: FAILED at step '$CURRENT_STEP' (exit $code). The lines above show the error." >&2
  exit "$code"
}
trap on_error ERR

step() {
  CURRENT_STEP="$1"
  STEP_START=$(date +%s)
  printf '==> %s\n' "$1"
}
done_step() {
  printf '    %s (%ss)\n' "$1" "$(($(date +%s) - STEP_START))"
}

# Links a cached artefact into .tools/bin.
link_tool() {
  ln -sfn "$1" "$BIN/$2"
}

# Installs the Debian packages among "$@" that are missing.
apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "    installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    done_step "installed ${#missing[@]} packages"
  else
    done_step "all $# present"
  fi
}

require_go() {
  command -v go >/dev/null || { echo "setup: Go is required to build $1 (install Go >= 1.25)" >&2; exit 1; }
}

# Builds Go main packages at a pinned module version into <dir>, once. <prepare>, if not empty,
# is a function run in the module directory before `go mod tidy` (to add sources of its own).
# GO_TOOL_MODULE, if set, names the tools module (default deploy-mcp/tools).
#   go_tool_build <dir> <go-directive> <go.mod lines (newline-separated)> <ldflags> <pkg>...
go_tool_build() {
  local dir="$1" go_directive="$2" mod_lines="$3" ldflags="$4"
  shift 4
  local src="$dir.src"
  rm -rf "$src" "$dir.partial" && mkdir -p "$src" "$dir.partial"
  printf 'module %s\n\ngo %s\n\n%s\n' "${GO_TOOL_MODULE:-deploy-mcp/tools}" "$go_directive" "$mod_lines" >"$src/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for pkg in "$@"; do [[ "$pkg" == ./* ]] || printf 'import _ "%s"\n' "$pkg"; done
  } >"$src/tools.go"
  [[ -z "${GO_TOOL_PREPARE:-}" ]] || (cd "$src" && "$GO_TOOL_PREPARE")
  # Heavy builds run at low priority so the machine stays usable meanwhile.
  (cd "$src" && GOFLAGS=-mod=mod go mod tidy &&
    CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$dir.partial/" "$@")
  rm -rf "$dir" && mv "$dir.partial" "$dir" && rm -rf "$src"
}

# go_tool_build in two halves, so setup downloads one tool's modules while another compiles.
# go_tool_fetch writes <dir>.src and downloads only the modules the build needs (`go list -deps`;
# `go mod tidy` also fetches the modules of every dependency's tests, twice the bytes).
#   go_tool_fetch <dir> <go-directive> <go.mod lines (newline-separated)> <pkg>...
go_tool_fetch() {
  local dir="$1" go_directive="$2" mod_lines="$3"
  shift 3
  local src="$dir.src"
  rm -rf "$src" "$dir.partial" && mkdir -p "$src"
  printf 'module deploy-mcp/tools\n\ngo %s\n\n%s\n' "$go_directive" "$mod_lines" >"$src/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for pkg in "$@"; do printf 'import _ "%s"\n' "$pkg"; done
  } >"$src/tools.go"
  # One "go: downloading" line per module: counted, shown only when the download fails.
  (cd "$src" && GOFLAGS=-mod=mod go list -deps "$@" >/dev/null 2>"$src/fetch.log") ||
    { cat "$src/fetch.log" >&2 && return 1; }
  printf '    %s modules downloaded (%ss)\n' "$(grep -c '^go: downloading' "$src/fetch.log" || true)" \
    "$(($(date +%s) - STEP_START))"
}
# Builds <pkg>... from <dir>.src into <dir> (one compile at a time when GO_BUILD_LOCK names a
# lock file: two at once on 2 cores only lose the shared build cache).
#   go_tool_compile <dir> <ldflags> <pkg>...
go_tool_compile() {
  local dir="$1" ldflags="$2"
  shift 2
  local lock=()
  [[ -z "${GO_BUILD_LOCK:-}" ]] || lock=(flock -w 3600 "$GO_BUILD_LOCK")
  mkdir -p "$dir.partial"
  (cd "$dir.src" && GOFLAGS=-mod=mod CGO_ENABLED=0 "${lock[@]}" nice -n 10 \
    go build -trimpath -ldflags "-s -w $ldflags" -o "$dir.partial/" "$@")
  rm -rf "$dir" && mv "$dir.partial" "$dir" && rm -rf "$dir.src"
}

# ---------------------------------------------------------------------------
# Steps run in parallel (setup.sh). Each job's output goes to a log of its own, printed whole
# when the job ends, so parallel output never interleaves; a failed job prints its log and fails
# setup, and the other jobs are stopped. All of them together get SETUP_JOBS_TIMEOUT seconds.
declare -A JOB_IDS=()
JOBS_DIR=""
SETUP_JOBS_TIMEOUT="${SETUP_JOBS_TIMEOUT:-3600}"
# Every SETUP_PROGRESS_EVERY seconds, one line per job still running: its current step and time.
SETUP_PROGRESS_EVERY="${SETUP_PROGRESS_EVERY:-30}"

#   start_job <id> <function> [<arg>...]
start_job() {
  local id="$1"
  shift
  if [[ -z "$JOBS_DIR" ]]; then
    JOBS_DIR="$(mktemp -d)"
    GO_BUILD_LOCK="$JOBS_DIR/go-build.lock"
    trap stop_jobs EXIT
    trap 'exit 129' HUP # so that Ctrl-C or a kill of setup stops the jobs too (the EXIT trap)
    trap 'exit 130' INT
    trap 'exit 143' TERM
    set -m # each job a process group of its own, so stopping one stops its children too
    sleep "$SETUP_JOBS_TIMEOUT" &
    JOB_IDS[$!]="(timeout)"
    progress_lines &
    JOB_IDS[$!]="(progress)"
  fi
  # <id>.done marks a job ended (whatever its exit), so progress_lines stops naming it. (A trap,
  # not `cmd && … || …`: that context would switch `set -e` off inside the job.)
  (
    trap ": >'$JOBS_DIR/$id.done'" EXIT
    "$@"
  ) >"$JOBS_DIR/$id.log" 2>&1 &
  JOB_IDS[$!]="$id"
  printf '... %s: started\n' "$id"
}

# Progress while jobs run (their logs are printed only when they end): every
# SETUP_PROGRESS_EVERY s, "... <id>: <its current step> (<s> s)" for each job not yet done.
# Printed under print.lock, so it never lands inside a finished job's log.
progress_lines() {
  local start=$SECONDS log id current
  while sleep "$SETUP_PROGRESS_EVERY"; do
    for log in "$JOBS_DIR"/*.log; do
      id="$(basename "$log" .log)"
      [[ -e "$log" && ! -e "$JOBS_DIR/$id.done" ]] || continue
      current="$(grep '^==> ' "$log" | tail -1 | cut -c5-)"
      flock "$JOBS_DIR/print.lock" printf '... %s: %s (%s s)\n' "$id" "${current:-starting}" "$((SECONDS - start))"
    done
  done
}

# Waits for every job, printing each one's log as it ends; exits non-zero on the first failure.
wait_jobs() {
  local pid id code last
  while [[ " ${JOB_IDS[*]} " == *" "[!\(]* ]]; do # a job left that is not "(timeout)"/"(progress)"
    code=0
    wait -n -p pid "${!JOB_IDS[@]}" || code=$?
    id="${JOB_IDS[$pid]}"
    unset "JOB_IDS[$pid]"
    if [[ "$id" == "(timeout)" ]]; then
      local running=()
      for id in "${JOB_IDS[@]}"; do [[ "$id" == "("* ]] || running+=("$id"); done
      echo "setup: FAILED: still running after ${SETUP_JOBS_TIMEOUT}s: ${running[*]}" >&2
      for id in "${running[@]}"; do sed 's/^/    | /' "$JOBS_DIR/$id.log" >&2; done
      exit 1
    fi
    [[ "$id" != "(progress)" ]] || continue # it never ends by itself; if it did, jobs go on
    flock "$JOBS_DIR/print.lock" cat "$JOBS_DIR/$id.log"
    if ((code)); then
      last="$(grep '^==> ' "$JOBS_DIR/$id.log" | tail -1 | cut -c5-)"
      echo "setup: FAILED at step '$last' (exit $code). The lines above show the error." >&2
      exit "$code"
    fi
  done
  stop_jobs
  set +m
}

# Stops the jobs still running (each its process group), removes their logs.
stop_jobs() {
  local pid
  for pid in "${!JOB_IDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true # reaped here, so the shell prints no job notice
  done
  JOB_IDS=()
  [[ -z "$JOBS_DIR" ]] || rm -rf "$JOBS_DIR"
  JOBS_DIR=""
}

# ---------------------------------------------------------------------------
# Debian root filesystems (base images in setup.sh, the Ansible test target in setup-ansible.sh).

# The mirror apt already uses on this machine (deb822 .sources or one-line sources.list).
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n "$uri" ]] || uri=$(awk '$1 == "deb" && $0 ~ /bookworm/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n "$uri" ]] || { echo "setup: no Debian mirror found in /etc/apt/sources.list*" >&2; return 1; }
  echo "$uri"
}

# A Debian root filesystem tarball: debootstrap minbase with <packages> (comma-separated), plus
# this machine's CA bundle so builds reach package registries through whatever this machine
# trusts (e.g. a TLS-inspecting proxy); <customize>, if given, runs with the rootfs directory.
#   debian_rootfs <tar> <packages> [<customize>]
debian_rootfs() {
  local tar="$1" include="$2" customize="${3:-}" work
  work="$(mktemp -d)"
  debootstrap --variant=minbase --include="$include" "$BASE_DEBIAN_SUITE" "$work/rootfs" "$(debian_mirror)" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; rm -rf "$work"; return 1; }
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  [[ -z "$customize" ]] || "$customize" "$work/rootfs"
  rm -rf "$work"/rootfs/var/cache/apt/* "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/{doc,man,locale,info}
  tar --numeric-owner -C "$work/rootfs" -cf "$tar.partial" .
  mv "$tar.partial" "$tar"
  rm -rf "$work"
}
