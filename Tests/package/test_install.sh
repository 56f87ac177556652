#!/usr/bin/env bash
# The packages tested as an administrator would use them (make test-package):
# in a clean Debian 12 root made with debootstrap, where no Swift toolchain
# exists, it installs build/libapache2-mod-swiftwebsocket_*.deb with apt,
# enables the module, sets a handler root holding handlers built on this
# machine with the swiftwebsocket-sdk package, runs apache2ctl configtest,
# starts Debian's apache2 and echoes through a handler, then a2dismod, apt
# remove and apt purge, checking that nothing of the package is left.
#
# The root (minbase + apache2, with bookworm-security's updates) is made
# once and kept in build/package-test/bookworm; each run works on a fresh
# copy of it. Needs root and Debian's archive. Without them the test is
# skipped with a message saying why, unless SWIFTWEBSOCKET_REQUIRE_PACKAGE_TEST=1
# (CI): then that fails. DEBIAN_MIRROR picks another mirror.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

require=${SWIFTWEBSOCKET_REQUIRE_PACKAGE_TEST:-0}
skip() {
  if [ "$require" = 1 ]; then echo "test-package: FAILED: $*" >&2; exit 1; fi
  echo "test-package: SKIPPED: $*"
  exit 0
}
fail() { echo "test-package: FAILED: $*" >&2; exit 1; }
step() { echo "test-package: $*"; }

version=$(cat VERSION)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb=build/libapache2-mod-swiftwebsocket_${version}_${arch}.deb
sdk_deb=build/swiftwebsocket-sdk_${version}_${arch}.deb
[ -f "$deb" ] && [ -f "$sdk_deb" ] || fail "$deb or $sdk_deb missing: run make deb"
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap and chroot); run as root or under sudo"
command -v debootstrap >/dev/null || skip "debootstrap is not installed (scripts/install-package-deps installs it)"
command -v python3 >/dev/null || skip "needs python3 for the WebSocket client"

cache=$top/build/package-test
base=$cache/bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
mkdir -p "$cache"
started=$(date +%s)

# ---- The cached root: a server that has Apache and nothing of ours ----
if [ ! -e "$base/.package-test-base-complete" ]; then
  step "making a Debian 12 root with debootstrap (once; kept in $base)"
  rm -rf "$base.tmp"
  if ! debootstrap --variant=minbase --include=apache2 bookworm "$base.tmp" "$mirror" \
      > "$cache/debootstrap.log" 2>&1; then
    tail -n 5 "$cache/debootstrap.log" >&2
    skip "debootstrap could not make the root from $mirror (see $cache/debootstrap.log)"
  fi
  cat > "$base.tmp/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security_mirror bookworm-security main
SOURCES
  # Maintainer scripts must not start services in the root: it shares this
  # machine's network (apache2 would take port 80). The test starts apache2
  # itself, on a port of its own.
  printf '#!/bin/sh\nexit 101\n' > "$base.tmp/usr/sbin/policy-rc.d"
  chmod 755 "$base.tmp/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$base.tmp/etc/resolv.conf"
  # A server keeps up with security updates (Debian 12's apache2 comes
  # from there).
  chroot "$base.tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get upgrade -y -qq && apt-get clean' > "$cache/upgrade.log" 2>&1 \
    || { tail -n 5 "$cache/upgrade.log" >&2; skip "apt could not update the root (see $cache/upgrade.log)"; }
  touch "$base.tmp/.package-test-base-complete"
  rm -rf "$base"
  mv "$base.tmp" "$base"
fi

# ---- A fresh copy for this run ----
root=$cache/root
cleanup() {
  # Whatever still runs inside the root (apache2): the test started it.
  local p
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then kill -9 "${p#/proc/}" 2>/dev/null || true; fi
  done
  umount "$root/proc" 2>/dev/null || true
}
trap cleanup EXIT
if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc"; fi
rm -rf "$root"
cp -a --reflink=auto "$base" "$root"
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}
[ ! -e "$root/opt/swift" ] && ! in_root sh -c 'command -v swiftc' >/dev/null \
  || fail "the root has a Swift toolchain; the test needs one without"

# ---- Handlers, built here with the SDK package ----
# The SDK package unpacked aside (not installed on this machine): its
# swiftwebsocket-build with SWIFTWEBSOCKET_SDK pointing into it. A second
# copy with another ABI stamp makes the handler the module must refuse.
step "building handlers with $sdk_deb"
sdk=$cache/sdk
rm -rf "$sdk" "$cache/handlers"
dpkg-deb -x "$sdk_deb" "$sdk"
mkdir -p "$cache/handlers"
cp examples/echo_wsh.swift "$cache/handlers/echo_wsh.swift"
SWIFTWEBSOCKET_SDK=$sdk/usr/lib/swiftwebsocket/sdk "$sdk/usr/bin/swiftwebsocket-build" "$cache/handlers/echo_wsh.swift"
cp -r "$sdk/usr/lib/swiftwebsocket/sdk" "$cache/other-sdk"
printf '0.0.0+other' > "$cache/other-sdk/abi"
cp examples/echo_wsh.swift "$cache/handlers/stale_wsh.swift"
SWIFTWEBSOCKET_SDK=$cache/other-sdk "$sdk/usr/bin/swiftwebsocket-build" "$cache/handlers/stale_wsh.swift"
rm -rf "$cache/other-sdk"

# ---- apt install ./the.deb ----
step "apt install ./$(basename "$deb")"
cp "$deb" "$root/root/"
in_root sh -c "cd /root && apt-get install -y -q ./$(basename "$deb")" > "$cache/install.log" 2>&1 \
  || { tail -n 20 "$cache/install.log" >&2; fail "apt could not install the package (see $cache/install.log)"; }
rm -f "$root/root/$(basename "$deb")"
in_root dpkg-query -W -f='${Status}\n' libapache2-mod-swiftwebsocket | grep -q "install ok installed" \
  || fail "the package is not installed"
# The module finds the engine and the runtime in the package, nothing else.
in_root ldd /usr/lib/apache2/modules/mod_swiftwebsocket.so > "$cache/ldd.txt" 2>&1
if grep -q 'not found' "$cache/ldd.txt"; then cat "$cache/ldd.txt" >&2; fail "unresolved libraries"; fi
core=$(awk '$1 == "libswiftCore.so" { print $3 }' "$cache/ldd.txt")
[ -n "$core" ] && [ "$(in_root realpath "$core")" = "/usr/lib/$multiarch/swiftwebsocket/libswiftCore.so" ] \
  || { cat "$cache/ldd.txt" >&2; fail "libswiftCore does not come from the package"; }

# ---- a2enmod, a handler root, configtest ----
step "a2enmod swiftwebsocket"
in_root a2enmod swiftwebsocket
in_root a2query -m swiftwebsocket
install -d -m 755 "$root/srv/ws"
install -m 644 "$cache/handlers/echo_wsh.so" "$cache/handlers/stale_wsh.so" "$root/srv/ws/"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/^Listen 80\$/Listen 127.0.0.1:$port/" "$root/etc/apache2/ports.conf"
grep -q "^Listen 127.0.0.1:$port\$" "$root/etc/apache2/ports.conf" || fail "ports.conf has no 'Listen 80' to change"
cat > "$root/etc/apache2/conf-available/websockets.conf" <<'CONF'
ServerName 127.0.0.1
# In <IfModule>: a2dismod swiftwebsocket leaves a configuration that holds.
<IfModule swiftwebsocket_module>
    SwiftWebSocketHandlerRoot /srv/ws
</IfModule>
CONF
in_root a2enconf -q websockets
step "apache2ctl configtest"
configtest=$(in_root apache2ctl configtest 2>&1) || { echo "$configtest" >&2; fail "configtest failed"; }
echo "$configtest" | sed 's/^/  /'
echo "$configtest" | grep -q "Syntax OK" || fail "configtest did not say Syntax OK"
echo "$configtest" | grep -q "stale_wsh.so" || fail "configtest did not name the handler built for another ABI"

# ---- Debian's apache2, an echo through the handler ----
step "apache2ctl start (Debian's apache2, port $port)"
in_root apache2ctl start
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
python3 Tests/package/ws_echo.py 127.0.0.1 "$port" /echo || { tail -n 20 "$root/var/log/apache2/error.log" >&2; fail "no echo through /echo"; }
python3 Tests/package/ws_echo.py 127.0.0.1 "$port" /stale --refused || fail "/stale (another ABI) was served"
grep -E "stale_wsh.so" "$root/var/log/apache2/error.log" | tail -n 1 | sed 's/^/  /'
grep "swiftwebsocket:notice" "$root/var/log/apache2/error.log" | tail -n 1 | sed 's/^/  /'
child=$(pgrep -P "$(cat "$root/run/apache2/apache2.pid")" | head -n 1)
grep -q "/usr/lib/$multiarch/swiftwebsocket/libswiftCore.so" "/proc/$child/maps" \
  || fail "apache2's child has not mapped the packaged libswiftCore"
if grep -q /opt/swift "/proc/$child/maps"; then fail "apache2's child maps something from /opt/swift"; fi

# ---- a2dismod, apt remove, apt purge ----
step "a2dismod swiftwebsocket; apache2ctl stop"
in_root a2dismod -q swiftwebsocket
in_root apache2ctl configtest 2>&1 | grep -q "Syntax OK" || fail "configtest fails once the module is disabled"
in_root apache2ctl stop
for _ in $(seq 1 100); do [ -e "$root/run/apache2/apache2.pid" ] || break; sleep 0.1; done

step "apt remove libapache2-mod-swiftwebsocket"
files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }')
in_root apt-get remove -y -q libapache2-mod-swiftwebsocket > "$cache/remove.log" 2>&1 \
  || { tail -n 20 "$cache/remove.log" >&2; fail "apt remove failed"; }
# What Debian keeps after remove: the conffiles, until purge.
for f in $files; do
  case "$f" in
    /etc/apache2/mods-available/swiftwebsocket.load|/etc/apache2/mods-available/swiftwebsocket.conf) ;;
    *) [ ! -e "$root$f" ] || fail "$f is still there after apt remove" ;;
  esac
done
[ ! -e "$root/usr/lib/$multiarch/swiftwebsocket" ] || fail "/usr/lib/$multiarch/swiftwebsocket is still there"
ls "$root/etc/apache2/mods-enabled" | grep -q swiftwebsocket && fail "mods-enabled still links the module"

step "apt purge libapache2-mod-swiftwebsocket"
in_root apt-get purge -y -q libapache2-mod-swiftwebsocket > "$cache/purge.log" 2>&1 \
  || { tail -n 20 "$cache/purge.log" >&2; fail "apt purge failed"; }
left=$(cd "$root" && find . -xdev -name '*swiftwebsocket*' ! -path './proc/*' | sed 's/^\.//')
[ -z "$left" ] || fail "left behind after purge: $left"
in_root dpkg-query -W libapache2-mod-swiftwebsocket >/dev/null 2>&1 && fail "dpkg still knows the package"
in_root apache2ctl configtest 2>&1 | grep -q "Syntax OK" || fail "Apache's configuration fails after purge"

step "PASSED in $(( $(date +%s) - started )) s: installed, enabled, configtest, echo through a handler built here, disabled, removed (conffiles kept), purged (nothing left)"
