#!/bin/sh
# Copies into OUTDIR the smallest tree Redis runs from: redis-server and redis-cli, the
# shared libraries they load (their ldd closure, loader included), busybox as /bin/sh
# (the entrypoint and sf-redis are shell scripts) and the accounts. Runs as root in the
# build stage; the result is the whole final image.
set -eu

OUT=${1:?usage: collect-runtime.sh OUTDIR}
# Fixed ids, so a volume keeps a valid owner across image rebuilds.
REDIS_UID=999
REDIS_GID=999
BINARIES="redis-server redis-cli"
# busybox applets the scripts use, plus a few that make `docker exec` debugging bearable.
APPLETS="sh cat chmod cp cut date echo env grep head id kill ls mkdir mktemp mv ps rm sed sleep tail test touch tr true false wc"

rm -rf "$OUT"
mkdir -p "$OUT/usr/bin" "$OUT/usr/lib" "$OUT/usr/lib64" "$OUT/usr/local/bin" "$OUT/etc" "$OUT/data" "$OUT/tmp" \
  "$OUT/run"
# Merged /usr, as on Debian: binaries name their loader /lib64/ld-linux-x86-64.so.2.
ln -s usr/bin "$OUT/bin"
ln -s usr/lib "$OUT/lib"
ln -s usr/lib64 "$OUT/lib64"

for name in $BINARIES; do
  cp -L "/usr/bin/$name" "$OUT/usr/bin/$name"
done

# ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
# mawk has no \s: fields are split on blanks anyway.
for name in $BINARIES; do
  ldd "/usr/bin/$name"
done | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u > /tmp/closure.txt
grep -q 'ld-linux' /tmp/closure.txt || { echo "collect-runtime: the dynamic loader is missing from the ldd closure" >&2; exit 1; }
while read -r lib; do
  mkdir -p "$OUT$(dirname "$lib")"
  cp -L "$lib" "$OUT$lib"
done < /tmp/closure.txt
echo "collect-runtime: $(wc -l < /tmp/closure.txt) shared libraries"

cp /bin/busybox "$OUT/usr/bin/busybox"
for applet in $APPLETS; do
  ln -s busybox "$OUT/usr/bin/$applet"
done

install -m 0755 /usr/local/src/sf/entrypoint.sh "$OUT/usr/local/bin/sf-redis-entrypoint"
# sf-redis: the readiness check and replication commands the platform runs with docker exec.
install -m 0755 /usr/local/src/sf/sf-redis.sh "$OUT/usr/local/bin/sf-redis"
mkdir -p "$OUT/usr/local/lib/sf-redis"
install -m 0644 /usr/local/src/sf/common.sh "$OUT/usr/local/lib/sf-redis/common.sh"

cat > "$OUT/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
redis:x:$REDIS_UID:$REDIS_GID:Redis:/data:/bin/sh
PASSWD
cat > "$OUT/etc/group" <<GROUP
root:x:0:
redis:x:$REDIS_GID:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$OUT/etc/nsswitch.conf"

# A fresh named volume takes the owner and mode of the directory it is mounted over.
chown "$REDIS_UID:$REDIS_GID" "$OUT/data"
chmod 0700 "$OUT/data"
# The local socket's folder (common.sh LOCAL_SOCKET): only the server's user reaches it.
mkdir -p "$OUT/run/redis"
chown "$REDIS_UID:$REDIS_GID" "$OUT/run/redis"
chmod 0700 "$OUT/run/redis"
chmod 1777 "$OUT/tmp"

# Fail the build here, not at first start, when a library or the loader is missing.
for name in $BINARIES; do
  chroot "$OUT" "/usr/bin/$name" --version > /dev/null
done
chroot "$OUT" /bin/sh -n /usr/local/bin/sf-redis
chroot "$OUT" /bin/sh -n /usr/local/bin/sf-redis-entrypoint
chroot "$OUT" /bin/sh -n /usr/local/lib/sf-redis/common.sh
echo "collect-runtime: $(du -sh "$OUT" | cut -f1) in $OUT"
