#!/usr/bin/env bash
# Real-systemd tier (DESIGN §7 tier 4): a Debian bookworm root with systemd,
# dbus, runc and busybox-static, booted under systemd-nspawn so that a real
# systemd 252 manages runc's `--systemd-cgroup` scopes on a cgroup v2 view.
#
#   nspawn-systemd.sh prepare        build the root once (cached, rebuilt if broken)
#   nspawn-systemd.sh boot STATEDIR  boot it in the background; write STATEDIR/{nspawn.pid,leader.pid}
#                                    (nspawn makes its own /dev/char in the guest; tests remove it)
#   nspawn-systemd.sh stop STATEDIR  power it off cleanly (SIGKILL only after a timeout)
#   nspawn-systemd.sh root           print the root directory
#
# Environment: WARDEN_NSPAWN_ROOT (default /var/cache/warden-e2e/nspawn-root),
# WARDEN_DEBIAN_MIRROR (default: the first deb.debian.org-style URI apt uses).
# Every step prints how long it took, so a run shows cold and warm timings.
set -euo pipefail

ROOT=${WARDEN_NSPAWN_ROOT:-/var/cache/warden-e2e/nspawn-root}
SUITE=bookworm
PACKAGES=systemd,dbus,systemd-sysv,runc,busybox-static
MARKER=.warden-nspawn-ready

log() { echo "nspawn-systemd: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

mirror() {
    if [[ -n ${WARDEN_DEBIAN_MIRROR:-} ]]; then
        echo "$WARDEN_DEBIAN_MIRROR"
        return
    fi
    # The URI apt itself uses for the main archive (deb822 or one-line form).
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
            /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
    echo "${uri:-http://deb.debian.org/debian}"
}

root_ok() {
    [[ -f $ROOT/$MARKER && -x $ROOT/usr/lib/systemd/systemd && -x $ROOT/usr/sbin/runc \
        && -x $ROOT/bin/busybox && -x $ROOT/usr/bin/dbus-daemon ]]
}

prepare() {
    # Two test binaries may prepare at once: one builds, the other waits.
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$ROOT.prepare.lock"
    flock -w 900 9 || { log "timed out waiting for another prepare"; exit 1; }
    if root_ok; then
        log "root $ROOT is ready (cached)"
        return
    fi
    local t0 tmp
    t0=$(now)
    tmp="$ROOT.tmp.$$"
    rm -rf "$tmp"
    if [[ -e $ROOT ]]; then
        log "root $ROOT is incomplete; rebuilding"
        rm -rf "$ROOT"
    fi
    mkdir -p "$(dirname "$ROOT")"
    local m
    m=$(mirror)
    log "debootstrap $SUITE from $m into $tmp"
    if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$m" \
            >"$tmp.log" 2>&1; then
        tail -n 30 "$tmp.log" >&2
        rm -rf "$tmp"
        log "debootstrap failed (log above)"
        exit 1
    fi
    rm -f "$tmp.log"
    # A fixed machine id keeps journald and D-Bus quiet and the root stable
    # between boots.
    if [[ ! -s $tmp/etc/machine-id ]]; then
        printf '%s\n' "$(tr -d '-' </proc/sys/kernel/random/uuid)" >"$tmp/etc/machine-id"
    fi
    # Nothing in the guest needs a getty or networkd; fewer units boot faster.
    ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$tmp/etc/systemd/system/getty@.service"
    ln -sf /dev/null "$tmp/etc/systemd/system/systemd-networkd.service"
    ln -sf /dev/null "$tmp/etc/systemd/system/systemd-resolved.service"
    touch "$tmp/$MARKER"
    mv "$tmp" "$ROOT"
    log "prepared $ROOT in $(elapsed "$t0") s"
}

children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }

leader_of() {
    # $1 is flock(1), whose child is systemd-nspawn, whose child is the
    # container's PID 1 (systemd).
    local n k
    for n in $(children "$1"); do
        for k in $(children "$n"); do
            if [[ $(cat /proc/"$k"/comm 2>/dev/null) == systemd ]]; then
                echo "$k"
                return 0
            fi
        done
    done
    return 1
}

boot() {
    local state=$1 t0 pid leader s
    mkdir -p "$state"
    root_ok || prepare
    t0=$(now)
    # One boot of the root at a time (nspawn refuses a second one): flock
    # holds the lock for as long as systemd-nspawn runs, so a second caller
    # waits for the first to power off.
    SYSTEMD_SECCOMP=0 SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 setsid \
        flock -w 900 "$ROOT.boot.lock" systemd-nspawn -D "$ROOT" \
        --boot --console=pipe --register=no --keep-unit --capability=all \
        --machine="warden-e2e-$$" </dev/null >"$state/console.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$state/nspawn.pid"
    for _ in $(seq 1 9000); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$state/console.log" >&2
            log "systemd-nspawn exited during boot"
            exit 1
        fi
        if leader=$(leader_of "$pid"); then
            s=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
            case $s in
                running | degraded)
                    echo "$leader" >"$state/leader.pid"
                    log "booted (state $s, leader $leader) in $(elapsed "$t0") s"
                    return 0
                    ;;
            esac
        fi
        sleep 0.1
    done
    tail -n 40 "$state/console.log" >&2
    log "systemd did not become ready within 900 s (including any wait for another boot)"
    kill -KILL "$pid" 2>/dev/null || true
    exit 1
}

stop() {
    local state=$1 t0 pid leader
    t0=$(now)
    pid=$(cat "$state/nspawn.pid" 2>/dev/null || true)
    leader=$(cat "$state/leader.pid" 2>/dev/null || true)
    [[ -n $pid ]] || { log "nothing to stop"; return 0; }
    if [[ -n $leader ]] && kill -0 "$leader" 2>/dev/null; then
        nsenter -t "$leader" -a systemctl --no-block poweroff >/dev/null 2>&1 \
            || kill -RTMIN+4 "$leader" 2>/dev/null || true
    fi
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || {
            log "stopped cleanly in $(elapsed "$t0") s"
            return 0
        }
        sleep 0.1
    done
    log "systemd-nspawn still running after 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

case ${1:-} in
    prepare) prepare ;;
    boot) boot "${2:?state dir}" ;;
    stop) stop "${2:?state dir}" ;;
    root) echo "$ROOT" ;;
    *)
        echo "usage: $0 prepare | boot STATEDIR | stop STATEDIR | root" >&2
        exit 2
        ;;
esac
