#!/usr/bin/env bash
# Usage: scripts/bench-compare.sh            # Berth vs Distribution (docker-registry), same run
#        SIZE=64MiB SECONDS_GET=3 scripts/bench-compare.sh   # quicker
#
# Starts target/release/berth and /usr/bin/docker-registry on free loopback ports with
# temporary data dirs, drives both with berth-loadgen in alternation (push SIZE, pull SIZE,
# SMALL_COUNT small pushes, manifest GET at CONNS connections for SECONDS_GET s, then a
# multi-GiB pull while sampling each server's peak RSS, VmHWM), prints one table (metric, berth, docker-registry, ratio)
# and stops both servers. A last column runs the same loads against berth-bench-stub, a
# storage-less stub (no hashing, no disk): a reference for what client + loopback cost here.
# Berth is multi-tenant: after it starts, the script provisions organisation `bench`, registry
# `load` and a read+write token with the `berth` CLI (admin token from DATA/admin-token), and
# the load generator sends that token as Basic credentials on every Berth request. Distribution
# and the stub run anonymous, with the same repository name.
# Benches compare, never assert: the exit status only says whether every run completed.
#
# Knobs (environment):
#   SIZE=256MiB  PUSH_COUNT=1  PULL_COUNT=1  RSS_PULL_COUNT=8  CONNS=32  SECONDS_GET=10
#   SMALL_SIZE=4KiB  SMALL_COUNT=1000  SMALL_CONNS=8   (many small pushes: group commit)
#   BERTH_BIN=target/release/berth   REGISTRY_BIN=/usr/bin/docker-registry
#   LOADGEN_BIN=target/release/berth-loadgen   STUB_BIN=target/release/berth-bench-stub
#   STUB=0 (skip the stub column)              NO_BUILD=1 (use the binaries as they are)
#   REPO=bench/load/app        repository used on every server; on Berth ORG/REGISTRY/IMAGE,
#                              and ORG and REGISTRY are created before the runs
#   ONLY=berth|docker-registry run one side (the other column reads n/a)
#   OUT=DIR                    keep the loadgen JSON lines and server logs there
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

SIZE=${SIZE:-256MiB}
PUSH_COUNT=${PUSH_COUNT:-1}
PULL_COUNT=${PULL_COUNT:-1}
RSS_PULL_COUNT=${RSS_PULL_COUNT:-8}
CONNS=${CONNS:-32}
SMALL_SIZE=${SMALL_SIZE:-4KiB}
SMALL_COUNT=${SMALL_COUNT:-1000}
SMALL_CONNS=${SMALL_CONNS:-8}
SECONDS_GET=${SECONDS_GET:-10}
REPO=${REPO:-bench/load/app}
BERTH_BIN=${BERTH_BIN:-$ROOT/target/release/berth}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
LOADGEN_BIN=${LOADGEN_BIN:-$ROOT/target/release/berth-loadgen}
STUB_BIN=${STUB_BIN:-$ROOT/target/release/berth-bench-stub}
STUB=${STUB:-1}
ONLY=${ONLY:-}
IFS=/ read -r BERTH_ORG BERTH_REGISTRY BERTH_IMAGE <<<"$REPO"
if [[ -z $BERTH_ORG || -z $BERTH_REGISTRY || -z $BERTH_IMAGE ]]; then
    echo "REPO=$REPO: Berth needs ORG/REGISTRY/IMAGE, like bench/load/app" >&2
    exit 1
fi
BERTH_SECRET=

WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [[ $OUT == "$WORK"/* ]]; then
        rm -rf "$WORK/berth-data" "$WORK/registry-data" "$WORK/registry.yml" "$WORK"/hwm-*
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

log() { printf '== %s\n' "$*" >&2; }

want() { [[ -z $ONLY || $ONLY == "$1" ]]; }

# ---- build -------------------------------------------------------------------------------
if [[ -z ${NO_BUILD:-} ]]; then
    pkgs=(-p berth-benches)
    want berth && pkgs+=(-p berth-server)
    log "cargo build --release ${pkgs[*]}"
    cargo build --release "${pkgs[@]}" >&2
fi
[[ -x $LOADGEN_BIN ]] || { echo "no load generator at $LOADGEN_BIN" >&2; exit 1; }
if [[ $STUB != 0 && ! -x $STUB_BIN ]]; then
    echo "no stub at $STUB_BIN (or STUB=0)" >&2
    exit 1
fi
if want berth && [[ ! -x $BERTH_BIN ]]; then
    echo "no berth binary at $BERTH_BIN (set BERTH_BIN, or ONLY=docker-registry)" >&2
    exit 1
fi
if want docker-registry && [[ ! -x $REGISTRY_BIN ]]; then
    echo "no docker-registry at $REGISTRY_BIN (apt-get install docker-registry, or ONLY=berth)" >&2
    exit 1
fi

# ---- servers -----------------------------------------------------------------------------
# A port nobody listens on now. Racy in principle; each server is checked to be up anyway.
# Picked below the kernel's ephemeral range: a port there may be the local end of a client
# connection in TIME_WAIT (a test run leaves hundreds), and a server then cannot bind it.
free_port() {
    local p low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    ((low > 11000)) || low=32768
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % (low - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}

wait_up() { # name port pid
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        kill -0 "$3" 2>/dev/null || { echo "$1 exited at start; log: $OUT/$1.log" >&2; cat "$OUT/$1.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "$1 did not listen on 127.0.0.1:$2 within 10 s" >&2
    exit 1
}

declare -A PID PORT
if want berth; then
    PORT[berth]=$(free_port)
    mkdir -p "$WORK/berth-data"
    log "berth serve on 127.0.0.1:${PORT[berth]}"
    # Each server runs in a session of its own (setsid): with the kernel's autogroup
    # scheduling, CPU is then shared fairly between the load generator's many threads and
    # the server, as it is between a registry and clients on other machines.
    setsid "$BERTH_BIN" serve --listen "127.0.0.1:${PORT[berth]}" --data "$WORK/berth-data" \
        >"$OUT/berth.log" 2>&1 &
    PID[berth]=$!
    PIDS+=("$!")
    wait_up berth "${PORT[berth]}" "${PID[berth]}"
    # The admin token is written just after the listening line; wait for the file.
    for _ in $(seq 100); do
        [[ -s $WORK/berth-data/admin-token ]] && break
        sleep 0.1
    done
    [[ -s $WORK/berth-data/admin-token ]] || { echo "berth wrote no admin token; log: $OUT/berth.log" >&2; exit 1; }
    # The admin token comes from DATA/admin-token and the write token's secret reaches the
    # load generator through its environment: neither shows in a process listing.
    admin() { env -u BERTH_TOKEN BERTH_SERVER="http://127.0.0.1:${PORT[berth]}" BERTH_DATA="$WORK/berth-data" "$BERTH_BIN" "$@"; }
    log "berth: org $BERTH_ORG, registry $BERTH_REGISTRY, a read_packages,write_packages token"
    admin org create "$BERTH_ORG" >>"$OUT/provision.log" 2>&1 ||
        { echo "berth org create failed; see $OUT/provision.log" >&2; exit 1; }
    admin registry create "$BERTH_ORG" "$BERTH_REGISTRY" >>"$OUT/provision.log" 2>&1 ||
        { echo "berth registry create failed; see $OUT/provision.log" >&2; exit 1; }
    BERTH_SECRET=$(admin token create "$BERTH_ORG" --scopes read_packages,write_packages \
        --description berth-bench 2>>"$OUT/provision.log" | tail -1) || true
    [[ -n $BERTH_SECRET ]] || { echo "berth token create failed; see $OUT/provision.log" >&2; exit 1; }
fi
if want docker-registry; then
    PORT[docker-registry]=$(free_port)
    mkdir -p "$WORK/registry-data"
    # Debian's packaged config, minus auth, health checks and logging: the in-memory blob
    # descriptor cache stays on, as it is in every stock Distribution config.
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $WORK/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${PORT[docker-registry]}
EOF
    log "docker-registry on 127.0.0.1:${PORT[docker-registry]}"
    setsid "$REGISTRY_BIN" serve "$WORK/registry.yml" >"$OUT/docker-registry.log" 2>&1 &
    PID[docker-registry]=$!
    PIDS+=("$!")
    wait_up docker-registry "${PORT[docker-registry]}" "${PID[docker-registry]}"
fi

if [[ $STUB != 0 ]]; then
    PORT[stub]=$(free_port)
    log "berth-bench-stub on 127.0.0.1:${PORT[stub]}"
    setsid "$STUB_BIN" --listen "127.0.0.1:${PORT[stub]}" >"$OUT/stub.log" 2>&1 &
    PID[stub]=$!
    PIDS+=("$!")
    wait_up stub "${PORT[stub]}" "${PID[stub]}"
fi

SIDES=()
want berth && SIDES+=(berth)
want docker-registry && SIDES+=(docker-registry)
[[ $STUB != 0 ]] && SIDES+=(stub)

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- runs --------------------------------------------------------------------------------
vm_hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

declare -A RESULT # "<side> <key>" -> value
FAILED=0

# A field of the flat JSON summary line.
field() { grep -o "\"$2\":[-0-9.e]*" <<<"$1" | head -1 | cut -d: -f2; }

loadgen() { # side name args...
    local side=$1 name=$2
    shift 2
    local token=
    [[ $side == berth ]] && token=$BERTH_SECRET
    log "$side: berth-loadgen $*"
    local line rc=0
    line=$(BERTH_LOADGEN_TOKEN=$token "$LOADGEN_BIN" "$@" --target "http://127.0.0.1:${PORT[$side]}" \
        --repo "$REPO" --label "$side" 2>>"$OUT/loadgen-$side.err" | tee -a "$OUT/loadgen-$side.txt" | tail -1) || rc=$?
    echo "$line" >>"$OUT/$name.jsonl"
    if [[ $rc -ne 0 || ${line:0:1} != "{" ]]; then
        echo "   $side $name: FAILED (exit $rc); see $OUT/loadgen-$side.err" >&2
        tail -3 "$OUT/loadgen-$side.err" >&2 || true
        FAILED=1
        return
    fi
    echo "   $(tail -2 "$OUT/loadgen-$side.txt" | head -1)" >&2
    RESULT["$side $name"]=$line
}

for s in "${SIDES[@]}"; do loadgen "$s" push push --size "$SIZE" --count "$PUSH_COUNT"; done
for s in "${SIDES[@]}"; do RESULT["$s hwm_push"]=$(vm_hwm_kib "${PID[$s]}"); done
for s in "${SIDES[@]}"; do loadgen "$s" pull pull --size "$SIZE" --count "$PULL_COUNT"; done
for s in "${SIDES[@]}"; do loadgen "$s" small push --size "$SMALL_SIZE" --count "$SMALL_COUNT" --conns "$SMALL_CONNS"; done
for s in "${SIDES[@]}"; do loadgen "$s" mget manifest-get --conns "$CONNS" --seconds "$SECONDS_GET"; done

# The multi-GiB pull, with each server's VmHWM sampled while it runs (and read once more
# after: VmHWM only grows, so the last reading is the peak).
for s in "${SIDES[@]}"; do
    pid=${PID[$s]}
    (
        peak=0
        while kill -0 "$pid" 2>/dev/null; do
            v=$(vm_hwm_kib "$pid")
            ((v > peak)) && peak=$v && echo "$peak" >"$WORK/hwm-$s"
            sleep 0.2
        done
    ) &
    sampler=$!
    loadgen "$s" bigpull pull --size "$SIZE" --count "$RSS_PULL_COUNT"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    last=$(vm_hwm_kib "$pid")
    sampled=$(cat "$WORK/hwm-$s" 2>/dev/null || echo 0)
    RESULT["$s hwm_all"]=$((last > sampled ? last : sampled))
done

# ---- table -------------------------------------------------------------------------------
val() { # side run key
    local line=${RESULT["$1 $2"]:-}
    [[ -n $line ]] && field "$line" "$3"
}

row() { # label run key
    local b d c ratio
    b=$(val berth "$2" "$3" || true)
    d=$(val docker-registry "$2" "$3" || true)
    c=$(val stub "$2" "$3" || true)
    ratio=$(awk -v b="${b:-}" -v d="${d:-}" 'BEGIN { if (b != "" && d != "" && d + 0 != 0) printf "%.2fx", b / d; else print "n/a" }')
    printf '| %-44s | %14s | %15s | %7s | %13s |\n' "$1" "${b:-n/a}" "${d:-n/a}" "$ratio" "${c:-n/a}"
}

one_row() { # label run key: a figure of the machine, not of a server (no ratio)
    local b d c
    b=$(val berth "$2" "$3" || true)
    d=$(val docker-registry "$2" "$3" || true)
    c=$(val stub "$2" "$3" || true)
    printf '| %-44s | %14s | %15s | %7s | %13s |\n' "$1" "${b:-n/a}" "${d:-n/a}" "-" "${c:-n/a}"
}

mib_row() { # label key
    local b=${RESULT["berth $2"]:-} d=${RESULT["docker-registry $2"]:-} bm dm ratio
    bm=$([[ -n $b ]] && awk -v k="$b" 'BEGIN { printf "%.1f", k / 1024 }' || true)
    dm=$([[ -n $d ]] && awk -v k="$d" 'BEGIN { printf "%.1f", k / 1024 }' || true)
    ratio=$(awk -v b="${b:-}" -v d="${d:-}" 'BEGIN { if (b != "" && d != "" && d + 0 != 0) printf "%.2fx", b / d; else print "n/a" }')
    printf '| %-44s | %14s | %15s | %7s | %13s |\n' "$1" "${bm:-n/a}" "${dm:-n/a}" "$ratio" "-"
}

echo
echo "Berth vs docker-registry ($("$REGISTRY_BIN" --version 2>/dev/null | awk '{print $NF}' || echo '?')), $(nproc) cores, $(date -u +%FT%TZ)"
echo "load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews both columns)"
echo "berth: token as Basic credentials on every request (repository $REPO); docker-registry and stub: anonymous"
echo "ratio = berth / docker-registry (MB/s, req/s: higher is better; latency, RSS: lower is better)"
echo "loopback stub = the same loads against a thread-per-connection server that hashes and stores nothing"
echo "  (a reference for client + loopback cost, not a strict bound: it writes pulls from one memory buffer, Berth from maps of its packs)"
echo
printf '| %-44s | %14s | %15s | %7s | %13s |\n' metric berth docker-registry ratio "loopback stub"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..17})" "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..15})"
row "push $PUSH_COUNT x $SIZE, MB/s" push mb_per_s
one_row "  SHA-256, one core: 1-conn push bound, MB/s" push sha256_mb_per_s
row "pull $PULL_COUNT x $SIZE, MB/s" pull mb_per_s
row "push $SMALL_COUNT x $SMALL_SIZE, $SMALL_CONNS conns, blobs/s" small ops_per_s
row "  per blob p50, ms" small op_p50_ms
row "manifest GET, $CONNS conns, req/s" mget req_per_s
row "manifest GET p50, us" mget p50_us
row "manifest GET p99, us" mget p99_us
row "manifest GET errors" mget errors
row "pull $RSS_PULL_COUNT x $SIZE, MB/s" bigpull mb_per_s
mib_row "peak RSS after push, MiB (VmHWM)" hwm_push
mib_row "peak RSS after $RSS_PULL_COUNT x $SIZE pull, MiB (VmHWM)" hwm_all
echo
echo "raw JSON and logs: $OUT"
exit "$FAILED"
