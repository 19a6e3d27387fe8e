#!/bin/sh
# build-deb.sh [OUTDIR] — build the Debian package of this tree
# (`make deb`), on Debian 12 or a derivative.
#
# dpkg-buildpackage -us -uc -b runs on a copy of the tree in
# OUTDIR/imapsnap-VERSION (default OUTDIR: build/deb), so the package is
# built from the sources alone, whatever build/ holds, and the .deb,
# .buildinfo and .changes land in OUTDIR instead of the parent directory.
# As root, the build dependencies (debian/control) are installed first
# with apt-get; as any other user, a missing one is an error that says
# what to run.  Prints the path of the .deb at the end.
set -eu
cd "$(dirname "$0")/.."
out=${1:-build/deb}
export DEBIAN_FRONTEND=noninteractive

as_root() { [ "$(id -u)" -eq 0 ]; }

if ! command -v dpkg-buildpackage >/dev/null 2>&1 ||
	! command -v dpkg-parsechangelog >/dev/null 2>&1; then
	if ! as_root; then
		echo "build-deb: dpkg-dev is missing; as root: apt-get install dpkg-dev" >&2
		exit 1
	fi
	apt-get install -y --no-install-recommends dpkg-dev ||
		{ apt-get update && apt-get install -y --no-install-recommends dpkg-dev; }
fi
if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
	if ! as_root; then
		dpkg-checkbuilddeps || true
		echo "build-deb: as root, run: apt-get build-dep ./" >&2
		exit 1
	fi
	apt-get build-dep -y --no-install-recommends ./ ||
		{ apt-get update && apt-get build-dep -y --no-install-recommends ./; }
fi

version=$(dpkg-parsechangelog -S Version)
src=$out/imapsnap-$version
rm -rf "$out"
mkdir -p "$src"
# The tree as it stands (committed or not), without what is ignored
# (build/, ...); without git, everything but build/ and .git.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$src"
fi
(cd "$src" && dpkg-buildpackage -us -uc -b)
ls "$out"/imapsnap_"$version"_*.deb
