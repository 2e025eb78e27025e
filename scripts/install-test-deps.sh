#!/usr/bin/env bash
# Installs the real clients the end-to-end tests drive
# (tests/tests/{skopeo,podman,docker,auth,oras,browser}.rs): skopeo, podman, dockerd + docker
# CLI (Debian's docker.io), containerd's ctr (Debian's containerd, which docker.io depends on;
# auth.rs pulls with it through the containerd that the test's dockerd starts), curl, the
# headless browser the web pages are tested in (Debian's chromium, and chromium-driver's
# chromedriver, its WebDriver), and the Python ORAS client (PyPI `oras` 0.2.x in a
# virtualenv at /var/cache/berth-tests/oras-venv, or $BERTH_ORAS_VENV, on Debian's python3
# with python3-venv), and makes sure podman
# has what it needs for rootful use with the vfs driver.
# For the distributed mode's tests (tests/src/{postgres,garage}.rs): Debian's PostgreSQL 15
# (`postgresql`; the tests run initdb and pg_ctl themselves, so no system cluster is made or
# started), and Garage, the S3 store, built from crates.io with
# `cargo install garage --version 2.5.0 --locked` into /var/cache/berth-tests/garage (or
# wherever $BERTH_GARAGE says the binary is). That first build takes about 25 CPU-minutes;
# the binary is cached there and later runs skip it.
# Idempotent: installs only what is missing and says what it did. Needs root (apt-get) when
# anything is missing.
set -euo pipefail

did=()
say() { echo "install-test-deps: $*"; }

# tool → Debian package providing it
declare -A pkg_of=(
    [skopeo]=skopeo
    [podman]=podman
    [dockerd]=docker.io
    [docker]=docker.io
    [containerd]=docker.io   # docker.io depends on containerd
    [ctr]=containerd
    [runc]=docker.io
    [curl]=curl
    [chromium]=chromium
    [chromedriver]=chromium-driver
)
missing=()
for tool in skopeo podman dockerd docker containerd ctr runc curl chromium chromedriver; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        p=${pkg_of[$tool]}
        [[ " ${missing[*]-} " == *" $p "* ]] || missing+=("$p")
    fi
done
# The ORAS virtualenv is made with Debian's python3 (not whatever python3 is first on PATH),
# which needs python3-venv for `-m venv` with pip.
oras_venv=${BERTH_ORAS_VENV:-/var/cache/berth-tests/oras-venv}
if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
pg_bin=/usr/lib/postgresql/15/bin
installing_postgres=0
if [[ ! -x $pg_bin/initdb ]]; then
    missing+=(postgresql)
    installing_postgres=1
fi

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        say "missing ${missing[*]}; run this script as root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting a system-wide dockerd: the tests start their own.
    policy_rc=/usr/sbin/policy-rc.d
    placed_policy=0
    if [[ ! -e $policy_rc ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
        chmod +x "$policy_rc"
        placed_policy=1
    fi
    trap 'if [[ $placed_policy -eq 1 ]]; then rm -f "$policy_rc"; fi' EXIT
    if ((installing_postgres)); then
        # Debian's postgresql makes a system cluster ("15/main") when installed unless told
        # not to; the tests make their own in temporary folders and want none running.
        mkdir -p /etc/postgresql-common/createcluster.d
        echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/berth-tests.conf
    fi
    say "apt-get update"
    apt-get update -qq
    say "apt-get install ${missing[*]}"
    # With recommends: the suite is validated against these packages installed this way
    # (podman's uidmap/catatonit/slirp4netns, docker.io's cgroupfs-mount and friends).
    apt-get install -y -qq "${missing[@]}" >/dev/null
    did+=("installed ${missing[*]}")
    if ((installing_postgres)) && command -v pg_lsclusters >/dev/null 2>&1; then
        # Belt and braces: policy-rc.d kept the package from starting a service, and no
        # cluster was made; stop any the package still left running.
        pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _; do
            if [[ $status == online* ]]; then
                say "stopping the system PostgreSQL cluster $ver/$name the package started"
                pg_ctlcluster "$ver" "$name" stop || true
            fi
        done
    fi
fi

# podman (and skopeo without --insecure-policy) read /etc/containers; the tests pass every
# storage path on the command line, so only the policy and registries files must exist.
if [[ $(id -u) -eq 0 ]]; then
    mkdir -p /etc/containers
    if [[ ! -s /etc/containers/policy.json ]]; then
        cat >/etc/containers/policy.json <<'JSON'
{
    "default": [{"type": "insecureAcceptAnything"}],
    "transports": {"docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}}
}
JSON
        did+=("wrote /etc/containers/policy.json")
    fi
    if [[ ! -e /etc/containers/registries.conf ]]; then
        echo 'unqualified-search-registries = []' >/etc/containers/registries.conf
        did+=("wrote /etc/containers/registries.conf")
    fi
fi

if ! "$oras_venv/bin/python" -c 'import oras.client' >/dev/null 2>&1; then
    say "python3 -m venv $oras_venv; pip install 'oras>=0.2,<0.3'"
    mkdir -p "$(dirname "$oras_venv")"
    /usr/bin/python3 -m venv "$oras_venv"
    "$oras_venv/bin/pip" install -q --disable-pip-version-check 'oras>=0.2,<0.3'
    did+=("installed oras into $oras_venv")
fi

# Garage (tests/src/garage.rs): built from crates.io once, into a cached folder. The first
# build takes about 25 CPU-minutes; later runs find the binary and skip it.
garage_root=/var/cache/berth-tests/garage
garage_bin=${BERTH_GARAGE:-$garage_root/bin/garage}
if [[ ! -x $garage_bin ]]; then
    if [[ -n ${BERTH_GARAGE-} ]]; then
        say "BERTH_GARAGE=$BERTH_GARAGE is not an executable; unset it to build Garage into $garage_root" >&2
        exit 1
    fi
    say "cargo install garage --version 2.5.0 --locked --root $garage_root (about 25 CPU-minutes, once; cached there)"
    mkdir -p "$garage_root"
    # Its own target folder, kept beside the binary, so a rebuild after an interrupted
    # first one resumes rather than starts over.
    CARGO_TARGET_DIR=/var/cache/berth-tests/garage-build \
        cargo install garage --version 2.5.0 --locked --root "$garage_root"
    did+=("installed garage 2.5.0 into $garage_root")
fi

for tool in skopeo podman dockerd docker ctr curl chromium chromedriver; do
    command -v "$tool" >/dev/null 2>&1 || { say "still missing: $tool" >&2; exit 1; }
done
for f in "$pg_bin/initdb" "$pg_bin/pg_ctl" "$pg_bin/psql" "$garage_bin"; do
    [[ -x $f ]] || { say "still missing: $f" >&2; exit 1; }
done
"$oras_venv/bin/python" -c 'import oras.client' || { say "still missing: oras in $oras_venv" >&2; exit 1; }

if ((${#did[@]})); then
    for d in "${did[@]}"; do say "$d"; done
else
    say "nothing to do: skopeo, podman, dockerd, docker, ctr, curl, chromium, chromedriver, oras, postgresql and garage are present"
fi
say "skopeo $(skopeo --version | awk '{print $3}'), podman $(podman --version | awk '{print $3}'), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,), oras $("$oras_venv/bin/pip" show oras 2>/dev/null | awk '/^Version:/ {print $2}'), chromedriver $(chromedriver --version | awk '{print $2}')"
say "postgres $("$pg_bin/postgres" --version | awk '{print $3}'), $("$garage_bin" --version 2>/dev/null | head -n 1)"
