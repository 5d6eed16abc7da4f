#!/bin/sh
# Copies into OUTDIR the smallest tree PostgreSQL 15 runs from: the server and client
# binaries, the shared libraries they load (their ldd closure, loader included), the
# share dir initdb reads, busybox as /bin/sh (initdb and pg_ctl shell out), the system
# time zone data (Debian builds postgres --with-system-tzdata) and the accounts.
# Runs as root in the build stage; the result is the whole final image.
set -eu

OUT=${1:?usage: collect-runtime.sh OUTDIR}
PG=/usr/lib/postgresql/15
# Fixed ids, so a volume keeps a valid owner across image rebuilds.
PG_UID=999
PG_GID=999
# Later features (replicas) need pg_basebackup and pg_rewind.
BINARIES="postgres initdb pg_ctl pg_isready psql pg_basebackup pg_rewind pg_controldata"
# busybox applets the entrypoint uses, plus a few that make `docker exec` debugging bearable.
APPLETS="sh basename cat chmod chown cp date dirname echo env grep head id kill ln ls mkdir mkfifo mktemp mv ps rm rmdir sed sleep tail test touch tr true false wc"

rm -rf "$OUT"
mkdir -p "$OUT/usr/bin" "$OUT/usr/lib" "$OUT/usr/lib64" "$OUT/usr/local/bin" "$OUT/usr/share" \
  "$OUT/etc" "$OUT$PG/bin" "$OUT/run/postgresql" "$OUT/var/lib/postgresql/data" "$OUT/tmp"
# Merged /usr, as on Debian: binaries name their loader /lib64/ld-linux-x86-64.so.2.
ln -s usr/bin "$OUT/bin"
ln -s usr/lib "$OUT/lib"
ln -s usr/lib64 "$OUT/lib64"
ln -s ../run "$OUT/var/run"

for name in $BINARIES; do
  cp -p "$PG/bin/$name" "$OUT$PG/bin/$name"
done

# Server modules (plpgsql, contrib, encoding conversions). llvmjit pulls in libLLVM
# (~100 MB); without it postgres simply runs without JIT.
cp -a "$PG/lib" "$OUT$PG/lib"
rm -rf "$OUT$PG"/lib/llvmjit* "$OUT$PG/lib/bitcode"

# initdb runs `locale -a` to import the system collations; C.utf8 is the one glibc
# locale worth having (a byte-order UTF-8 collation), and without the tool initdb warns.
cp -p /usr/bin/locale "$OUT/usr/bin/locale"
mkdir -p "$OUT/usr/lib/locale"
cp -a /usr/lib/locale/C.utf8 "$OUT/usr/lib/locale/C.utf8"

# ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
# mawk has no \s: match blanks with [ \t].
{
  for f in "$OUT$PG"/bin/* "$OUT$PG"/lib/*.so "$OUT/usr/bin/locale"; do
    ldd "${f#"$OUT"}" 2>/dev/null || true
  done
} | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u > /tmp/closure.txt
grep -q 'ld-linux' /tmp/closure.txt || { echo "collect-runtime: the dynamic loader is missing from the ldd closure" >&2; exit 1; }
while read -r lib; do
  mkdir -p "$OUT$(dirname "$lib")"
  cp -L "$lib" "$OUT$lib"
done < /tmp/closure.txt
echo "collect-runtime: $(wc -l < /tmp/closure.txt) shared libraries"

mkdir -p "$OUT/usr/share/postgresql"
cp -a /usr/share/postgresql/15 "$OUT/usr/share/postgresql/15"
rm -rf "$OUT/usr/share/postgresql/15/man"
# Leap-second ("right/") zones are never what a database wants; posix/ duplicates the rest.
cp -a /usr/share/zoneinfo "$OUT/usr/share/zoneinfo"
rm -rf "$OUT/usr/share/zoneinfo/right" "$OUT/usr/share/zoneinfo/posix"

cp /bin/busybox "$OUT/usr/bin/busybox"
for applet in $APPLETS; do
  ln -s busybox "$OUT/usr/bin/$applet"
done

install -m 0755 /usr/local/src/sf/entrypoint.sh "$OUT/usr/local/bin/sf-postgres-entrypoint"
# sf-pg: the replication commands the platform runs with docker exec (see README.md).
install -m 0755 /usr/local/src/sf/sf-pg.sh "$OUT/usr/local/bin/sf-pg"
mkdir -p "$OUT/usr/local/lib/sf-pg"
install -m 0644 /usr/local/src/sf/common.sh "$OUT/usr/local/lib/sf-pg/common.sh"

cat > "$OUT/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
postgres:x:$PG_UID:$PG_GID:PostgreSQL administrator:/var/lib/postgresql:/bin/sh
PASSWD
cat > "$OUT/etc/group" <<GROUP
root:x:0:
postgres:x:$PG_GID:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$OUT/etc/nsswitch.conf"

# A fresh named volume takes the owner and mode of the directory it is mounted over.
chown -R "$PG_UID:$PG_GID" "$OUT/var/lib/postgresql" "$OUT/run/postgresql"
chmod 0700 "$OUT/var/lib/postgresql/data"
chmod 2775 "$OUT/run/postgresql"
chmod 1777 "$OUT/tmp"

# Fail the build here, not at first start, when a library or the loader is missing.
for name in $BINARIES; do
  chroot "$OUT" "$PG/bin/$name" --version > /dev/null
done
chroot "$OUT" /bin/sh -c 'true'
chroot "$OUT" /bin/sh -n /usr/local/bin/sf-pg
chroot "$OUT" /bin/sh -n /usr/local/bin/sf-postgres-entrypoint
chroot "$OUT" /bin/sh -n /usr/local/lib/sf-pg/common.sh
echo "collect-runtime: $(du -sh "$OUT" | cut -f1) in $OUT"
