#!/usr/bin/env bash
# Ansible for the tests of ansible/ (platform/ansible.test.ts): ansible-core and ansible-lint from
# PyPI, pinned, in a venv kept in the tools cache and linked at .tools/ansible; and the throwaway
# Debian target the common and firewall roles are applied to (a debootstrap root with Python and
# the SSH server, cached as a tarball, linked at .tools/ansible-target.tar). Tests only: `npm start`
# never waits for it. Idempotent (cold: about 2 minutes; warm: instant). The roles use builtin
# modules only, so ansible-core is enough.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

step "Ansible (ansible-core $ANSIBLE_CORE_VERSION, ansible-lint $ANSIBLE_LINT_VERSION)"
dir="$CACHE/ansible-$ANSIBLE_CORE_VERSION-lint-$ANSIBLE_LINT_VERSION"
# Built in place (a venv's scripts name their interpreter by absolute path); the stamp says done.
if [[ ! -f "$dir/.complete" ]]; then
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check \
    "ansible-core==$ANSIBLE_CORE_VERSION" "ansible-lint==$ANSIBLE_LINT_VERSION"
  touch "$dir/.complete"
fi
ln -sfn "$dir" "$TOOLS/ansible"
done_step "$("$TOOLS/ansible/bin/ansible-playbook" --version | head -1)"

# The test runs the target as a podman container in a network namespace of its own (ip netns) and
# reaches it with ssh through `podman exec … sshd -i`.
step "Ansible test target: host tools"
apt_packages podman debootstrap iproute2 iptables openssh-client

step "Ansible test target: Debian $BASE_DEBIAN_SUITE minbase + $ANSIBLE_TARGET_PACKAGES"
tar_file="$CACHE/ansible-target-$BASE_DEBIAN_SUITE-$(printf '%s' "$ANSIBLE_TARGET_PACKAGES" | sha256sum | cut -c1-12).tar"
if [[ -f "$tar_file" ]]; then done_step "present"; else
  debian_rootfs "$tar_file" "$ANSIBLE_TARGET_PACKAGES"
  done_step "built ($(du -h "$tar_file" | cut -f1))"
fi
ln -sfn "$tar_file" "$TOOLS/ansible-target.tar"
