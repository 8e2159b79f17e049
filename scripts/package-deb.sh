#!/usr/bin/env bash
# Builds the Debian package of the sidecar and prints its path (the last line of stdout).
#
#   scripts/package-deb.sh [--binary PATH] [--out DIR]
#
#   --binary PATH  package this release binary (built with the default `tools` feature: it writes
#                  the completions and man pages); default: `cargo build --release` and use it
#   --out DIR      where the .deb goes (default: $CARGO_TARGET_DIR/debian, or target/debian)
#
# Made with `dpkg-deb --build` from the project's own files, not with cargo-deb: the package needs
# maintainer scripts either way (the system user, the journal directory, the config's group), and
# this way a clean clone installs no packaging tool, and what goes where is in this one file.
# Needs dpkg-deb, strip, objdump and gzip (dpkg and binutils). The user is made with useradd
# (package passwd, priority required) rather than adduser, so that nothing more is depended on.
#
# Contents (one source of truth each):
#   /usr/bin/glance-download-sidecar                         the binary, stripped
#   /lib/systemd/system/glance-download-sidecar.service      contrib/'s unit, with the packaged binary's
#                                                            path and user (see unit_file below)
#   /etc/glance-download-sidecar/sidecar.conf                contrib/sidecar.conf as is (a conffile,
#                                                            0640 root:glance-download-sidecar)
#   /usr/share/{bash-completion,zsh,fish}/...                completions, written by the binary
#   /usr/share/man/man1/glance-download-sidecar*.1.gz        man pages, written by the binary
#   /usr/share/doc/glance-download-sidecar/                  copyright, README.md.gz
# The maintainer scripts create the system user and group glance-download-sidecar and the journal
# directory /var/lib/glance-download-sidecar (0750, owned by it); `dpkg --purge` removes them. The
# service is not enabled or started on install: the config must first name the Glance and Keystone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
name=glance-download-sidecar
binary=
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=${2:?--binary needs a path}; shift ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "package-deb.sh: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg strip objdump gzip; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg binutils gzip)"
done

cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
if [ -z "$binary" ]; then
    cargo build --release >&2
    binary=$target_dir/release/$name
fi
[ -x "$binary" ] || die "no binary at $binary"
out=${out:-$target_dir/debian}
pkgid=$(cargo pkgid)
version=${pkgid##*[#@]}
arch=$(dpkg --print-architecture)

stage=$(mktemp -d "${TMPDIR:-/tmp}/$name-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/pkg
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
    "$pkg/etc/$name" "$pkg/usr/share/man/man1" "$pkg/usr/share/doc/$name" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d"

strip --strip-all -o "$pkg/usr/bin/$name" "$binary"
chmod 0755 "$pkg/usr/bin/$name"
bin=$pkg/usr/bin/$name
"$bin" --version >/dev/null || die "$binary does not run"

# The unit: contrib's, with the binary in /usr/bin, the package's own user, and its install note.
# Every edit must apply (a changed contrib unit fails the build rather than ship half-edited).
unit=$pkg/lib/systemd/system/$name.service
sed -e "s|/usr/local/bin/$name|/usr/bin/$name|" \
    -e "s|^User=glance\$|User=$name|" -e "s|^Group=glance\$|Group=$name|" \
    -e "/^# Install: /,/daemon-reload/c\\
# Installed by the Debian package, with the config in /etc/$name/sidecar.conf;\\
# set glance_url and auth_url there, then \`systemctl enable --now $name\`." \
    contrib/$name.service >"$unit"
grep -q "^ExecStart=/usr/bin/$name serve --config /etc/$name/sidecar.conf" "$unit" ||
    die "unit: ExecStart not rewritten"
grep -qx "User=$name" "$unit" && grep -qx "Group=$name" "$unit" || die "unit: User/Group not rewritten"
grep -q "^# Installed by the Debian package" "$unit" || die "unit: install note not rewritten"
chmod 0644 "$unit"

install -m 0640 contrib/sidecar.conf "$pkg/etc/$name/sidecar.conf"
echo "/etc/$name/sidecar.conf" >"$pkg/DEBIAN/conffiles"

"$bin" completions bash >"$pkg/usr/share/bash-completion/completions/$name"
"$bin" completions zsh >"$pkg/usr/share/zsh/vendor-completions/_$name"
"$bin" completions fish >"$pkg/usr/share/fish/vendor_completions.d/$name.fish"
"$bin" man-pages "$pkg/usr/share/man/man1"
gzip -9n "$pkg/usr/share/man/man1"/*.1
gzip -9nc README.md >"$pkg/usr/share/doc/$name/README.md.gz"
cat >"$pkg/usr/share/doc/$name/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $name

Files: *
Copyright: the $name authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# Depends: the shared libraries the binary links, checked so that a new one fails the build.
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
depends="libc6 (>= $glibc)"
for lib in $(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }'); do
    case "$lib" in
        libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux*) ;;
        libgcc_s.so.1) depends="$depends, libgcc-s1" ;;
        libssl.so.3 | libcrypto.so.3) [[ $depends == *libssl3* ]] || depends="$depends, libssl3" ;;
        *) die "the binary links $lib: add its package to Depends" ;;
    esac
done

cat >"$pkg/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: $name authors <root@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: $depends, passwd
Section: net
Priority: optional
Description: glance-download image import, streamed and verified, for OpenStack Glance
 A sidecar in front of an unmodified Glance API that implements the glance-download
 interoperable image import: it streams the image from the source region, verifies its
 size, MD5 and os_hash, and fails closed. Also: bulk copies between regions and clouds
 (sync), task listing and benchmarks.
EOF

cat >"$pkg/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
    getent group $name >/dev/null || groupadd --system $name
    getent passwd $name >/dev/null || useradd --system --gid $name --home-dir /var/lib/$name \\
        --no-create-home --shell /usr/sbin/nologin --comment "glance-download sidecar" $name
    install -d -o $name -g $name -m 0750 /var/lib/$name
    # As systemd does for StateDirectory=: what is already there (a journal written by a sidecar
    # run as another user, e.g. root with the built-in default path) becomes the service's.
    chown -R $name:$name /var/lib/$name
    if ! dpkg-statoverride --list /etc/$name/sidecar.conf >/dev/null; then
        chown root:$name /etc/$name/sidecar.conf
        chmod 0640 /etc/$name/sidecar.conf
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        [ -z "\$2" ] || systemctl try-restart $name.service || true
    fi
fi
EOF
cat >"$pkg/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
if [ "\$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now $name.service || true
fi
EOF
cat >"$pkg/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "\$1" = purge ]; then
    rm -rf /var/lib/$name
    ! getent passwd $name >/dev/null || userdel $name
    ! getent group $name >/dev/null || groupdel $name
    rmdir /etc/$name 2>/dev/null || true
fi
EOF
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

# Reproducible: every file dated by the last commit (when there is one).
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
find "$pkg" -exec touch -h -d "@$epoch" {} +
mkdir -p "$out"
deb=$out/${name}_${version}_$arch.deb
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
echo "$deb"
