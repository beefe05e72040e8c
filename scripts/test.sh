#!/usr/bin/env bash
# The one test command for regproxy.
#
# 1. Checks the system tools the tests drive (real clients and servers) and,
#    when run as root, installs missing ones with apt-get; otherwise it stops
#    and says what to install. Tests never skip a missing tool: they fail.
# 2. Runs formatting, lints and every test; exits non-zero on any failure.
#
# Usage: ./scripts/test.sh [extra args for `cargo test`, e.g. a test name]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==> %s\n' "$*"; }

# command name or absolute path -> Debian package that provides it
TOOLS=(
  "/usr/sbin/dockerd:docker.io"
  "/usr/bin/docker:docker.io"       # docker.io's client, matching its daemon
  "podman:podman"
  "skopeo:skopeo"
  "docker-registry:docker-registry" # CNCF Distribution, the reference registry
  "slapd:slapd"
  "ldapwhoami:ldap-utils"
  "htpasswd:apache2-utils"
  "/bin/busybox:busybox-static"     # static: it runs inside FROM scratch images
  "ip:iproute2"
  "tar:tar"
  "curl:curl"
  "openssl:openssl"                 # operator-made certificates (RSA, EC keys)
  "tc:iproute2"                     # a slow link for the token-lifetime push
  "tmux:tmux"                       # a real terminal for password prompts
  "git:git"                         # a fresh clone stays clean after the first serve
  "/usr/bin/containerd:containerd"  # containerd and ctr (also pulled in by docker.io)
  "/usr/bin/ctr:containerd"
  "/usr/sbin/nginx:nginx"           # the benchmark's static TLS ceiling
  "wrk:wrk"                         # the benchmark's request rates
  "/usr/bin/chromium:chromium"      # the web UI's browser tests (headless)
  "/usr/bin/chromedriver:chromium-driver"
  "docker-compose:docker-compose"   # compose.yaml with the real engine
)

have() {
  local tool=$1
  if [[ $tool == /* ]]; then
    [[ -x $tool ]]
  else
    PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1
  fi
}

missing_packages() {
  local entry tool pkg
  local -A seen=()
  for entry in "${TOOLS[@]}"; do
    tool=${entry%%:*}
    pkg=${entry#*:}
    if ! have "$tool" && [[ -z ${seen[$pkg]:-} ]]; then
      seen[$pkg]=1
      printf '%s\n' "$pkg"
    fi
  done
}

section "System tools"
mapfile -t missing < <(missing_packages)
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "installing: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} > 0)); then
      echo "error: still missing after apt-get install: ${missing[*]}" >&2
      exit 1
    fi
  else
    echo "error: missing packages: ${missing[*]}" >&2
    echo "hint: run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "all test tools present"

if [[ $(id -u) -ne 0 ]]; then
  echo "error: the end-to-end tests start their own dockerd, which needs root" >&2
  echo "hint: run ./scripts/test.sh as root (e.g. in the CI container)" >&2
  exit 1
fi

# Garage, the S3-compatible store the S3 tests start (a test server only, never
# linked into regproxy). Built from the crate registry once per machine.
GARAGE_ROOT=/opt/regproxy-tools/garage-2.5.0
section "Garage (S3 test server)"
if [[ -n ${REGPROXY_GARAGE:-} ]]; then
  echo "using REGPROXY_GARAGE=$REGPROXY_GARAGE"
elif [[ -x $GARAGE_ROOT/bin/garage ]]; then
  echo "garage present: $GARAGE_ROOT/bin/garage"
else
  echo "installing garage 2.5.0 into $GARAGE_ROOT"
  echo "(cargo install builds it from source: about 14 minutes on 2 cores, once per machine)"
  cargo install garage --version 2.5.0 --locked --root "$GARAGE_ROOT"
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "error: cargo $component is not installed" >&2
    echo "hint: rustup component add $component" >&2
    exit 1
  fi
done

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

# --all-targets includes the benchmark (bench/compare), which `cargo test`
# runs in its quick mode (under a minute): its byte checks must pass.
section "cargo test --all-targets"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [[ $status -eq 0 && $# -eq 0 ]]; then
  # The API suite once more, on S3 (one Garage node, a prefix per server).
  section "cargo test --test api on S3 (REGPROXY_API_STORAGE=s3)"
  set +e
  REGPROXY_API_STORAGE=s3 cargo test --test api 2>&1 | tee -a "$log"
  status=${PIPESTATUS[0]}
  set -e
fi
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
if [[ $status -ne 0 ]]; then
  section "FAILED"
  echo "summary: $passed passed, $failed failed"
  exit "$status"
fi

section "all checks passed"
echo "summary: $passed passed, $failed failed"
