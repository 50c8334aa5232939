# Shared helpers for the bench/ scripts; source it after `cd` to the repo
# root and after setting $work (the script's scratch directory):
#
#   . bench/lib.sh
#
# Everything here is deterministic or measures; nothing prints unless asked.

# bench_require NAME TOOL...: exits with a message naming the first TOOL
# that is not on PATH.
bench_require() {
    local name=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$name: $tool not found" >&2; exit 1; }
    done
}

# bench_aes BYTES: BYTES of incompressible, deterministic data on stdout
# (AES-CTR of zeros with a fixed key: random-looking, identical every run).
bench_aes() {
    head -c "$1" /dev/zero |
        openssl enc -aes-128-ctr -nosalt -K 6b696c6e6b696c6e6b696c6e6b696c6e -iv 00000000000000000000000000000000
}

# bench_kiln: builds kiln (release) and sets $kiln to its absolute path.
bench_kiln() {
    cargo build --release -q -p kiln
    kiln=$(realpath "${CARGO_TARGET_DIR:-target}/release/kiln")
}

registry_pid=
# bench_stop_registry: stops the registry bench_start_registry started, if any.
bench_stop_registry() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
        registry_pid=
    fi
}

# bench_start_registry: a fresh, empty docker-registry on a free port with
# its storage under $work/registry; sets $host (127.0.0.1:PORT). The
# caller stops it (trap bench_stop_registry EXIT).
bench_start_registry() {
    bench_stop_registry
    bench_registry_serve "$work/registry"
    registry_pid=$reg_pid
    host=$reg_host
}

# bench_registry_serve DIR: a fresh, empty docker-registry on a free port
# with its storage (wiped first), config and log under DIR; sets $reg_pid
# and $reg_host (127.0.0.1:PORT). The caller kills $reg_pid; a script
# needing two registries at once calls this twice.
bench_registry_serve() {
    local dir=$1 port
    rm -rf "$dir"
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$dir/storage" "$port" >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    reg_pid=$!
    reg_host=127.0.0.1:$port
    for _ in $(seq 100); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.05
    done
    echo "bench: docker-registry did not start:" >&2
    cat "$dir/log" >&2
    exit 1
}

# bench_from DOCKERFILE HOST > OUT: bench/gen's Dockerfile with its
# `FROM base` / `FROM debian` lines naming the images served by HOST
# (HOST/busybox:latest, HOST/debian:bookworm).
bench_from() {
    sed -E "s#^FROM base( |\$)#FROM $2/busybox:latest\1#; s#^FROM debian( |\$)#FROM $2/debian:bookworm\1#" "$1"
}

# bench_seconds CMD...: runs CMD quietly, prints its wall time in seconds;
# on failure prints CMD's standard error and exits.
bench_seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/stderr" || { echo "bench: $* failed:" >&2; cat "$work/stderr" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

# bench_measure CMD...: runs CMD quietly, prints "SECONDS PEAK_KIB" (wall
# time and peak resident set size, from /usr/bin/time); on failure prints
# CMD's standard error and exits.
bench_measure() {
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" ||
        { echo "bench: $* failed:" >&2; cat "$work/stderr" >&2; exit 1; }
    cat "$work/time"
}

# bench_median NUMBER...: the median of its arguments.
bench_median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

dockerd_pid=
# bench_stop_dockerd: stops the dockerd bench_start_dockerd started, if any,
# and unmounts what it left under $work/docker.
bench_stop_dockerd() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
        dockerd_pid=
        findmnt -rn -o TARGET | grep "^$work/docker" | sort -r | xargs -r umount -l 2>/dev/null || true
    fi
}

# bench_start_dockerd: the benchmark's own dockerd (BuildKit inside), with
# its data, exec root, socket and log under $work/docker, so it touches no
# system docker; installs Debian's docker.io first when dockerd is missing
# (as root). Sets DOCKER_HOST and $docker_cli (the docker CLI to use) and
# returns 0, or sets
# $dockerd_why and returns 1. Call it in the script's own shell, not in
# $(...), so the caller can stop it. Flags: no iptables or masquerading (not allowed
# in every sandbox); keep the default bridge, since with --bridge=none
# every RUN fails ("network bridge not found"). 127.0.0.0/8 registries are
# insecure by default in dockerd. On failure $dockerd_why says why.
bench_start_dockerd() {
    dockerd_why=
    if ! command -v dockerd >/dev/null; then
        if [ "$(id -u)" -ne 0 ]; then
            dockerd_why="dockerd missing (install docker.io as root)"
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null 2>&1 ||
            { dockerd_why="apt-get install docker.io failed"; return 1; }
    fi
    # The CLI packaged with this dockerd: Debian's 20.10 has BuildKit built
    # in, while a newer docker elsewhere on PATH insists on the buildx
    # plugin, which Debian does not package.
    docker_cli=$(dirname "$(command -v dockerd)")/docker
    [ -x "$docker_cli" ] || docker_cli=/usr/bin/docker
    local d=$work/docker
    mkdir -p "$d"
    dockerd --iptables=false --ip-masq=false --data-root "$d/data" --exec-root "$d/exec" \
        --pidfile "$d/dockerd.pid" --host "unix://$d/docker.sock" >"$d/log" 2>&1 &
    dockerd_pid=$!
    export DOCKER_HOST=unix://$d/docker.sock
    for _ in $(seq 200); do
        "$docker_cli" info >/dev/null 2>&1 && return 0
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.1
    done
    dockerd_why="dockerd did not start: $(tail -1 "$d/log")"
    bench_stop_dockerd
    return 1
}
