#!/usr/bin/env bash
# Ansible for the tests of ansible/ (platform/ansible.test.ts: --syntax-check and ansible-lint):
# ansible-core and ansible-lint from PyPI, pinned, in a venv kept in the tools cache and linked
# at .tools/ansible. Tests only: `npm start` never waits for it. Idempotent (cold: about a
# minute; warm: instant). The roles use builtin modules only, so ansible-core is enough.
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
