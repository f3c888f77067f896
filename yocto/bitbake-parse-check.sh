#!/usr/bin/env bash
# Parses meta-everpy with a real BitBake and resolves every dependency of both images, offline.
# Catches what a linter cannot: a misspelt RDEPENDS ("Nothing RPROVIDES"), QA errors at parse time,
# variables a release rejects, S/UNPACKDIR layout per release. Nothing is fetched or compiled.
#
#   yocto/bitbake-parse-check.sh POKY_DIR META_OE_DIR                       # scarthgap, walnascar
#   yocto/bitbake-parse-check.sh OE_CORE_DIR META_OE_DIR BITBAKE_DIR        # whinlatter and later
#
# POKY_DIR / OE_CORE_DIR and META_OE_DIR are checkouts of the same release branch. With poky the
# everpy-os distro is used; with plain oe-core (no meta-poky) nodistro plus the everpy-os override, the
# way a product with its own distro uses the layer. Run as a normal user (BitBake refuses root); the
# host needs the Yocto build host packages. A cold parse takes 2-5 minutes on 2 cores.
set -euo pipefail
core="$(realpath "$1")"; meta_oe="$(realpath "$2")"; bitbake_dir="${3:+$(realpath "$3")}"
layer="$(realpath "$(dirname "$0")/meta-everpy")"
build="${BUILD_DIR:-$(mktemp -d /tmp/everpy-bitbake-XXXXXX)}"
mkdir -p "$build/conf"

if [ -d "$core/meta-poky" ]; then
  core_layers="$core/meta $core/meta-poky"; distro='DISTRO = "everpy-os"'; bitbake_dir="${bitbake_dir:-$core/bitbake}"
else
  core_layers="$core/meta"; distro=$'DISTRO = "nodistro"\nDISTROOVERRIDES .= ":everpy-os"\nINIT_MANAGER = "systemd"'
fi
cat > "$build/conf/local.conf" <<CONF
$distro
MACHINE = "qemux86-64"
BB_NO_NETWORK = "1"
CONF_VERSION = "2"
CONF
cat > "$build/conf/bblayers.conf" <<CONF
POKY_BBLAYERS_CONF_VERSION = "2"
BBPATH = "\${TOPDIR}"
BBFILES ?= ""
BBLAYERS = "$core_layers $meta_oe/meta-oe $meta_oe/meta-python $meta_oe/meta-networking $layer"
CONF

cd "$build"
export BBPATH="$build" PATH="$bitbake_dir/bin:$core/scripts:$PATH" LANG="${LANG:-en_US.UTF-8}"
# -g parses every recipe (a parse error fails it) and resolves both images' dependencies.
bitbake -g everpy-image everpy-satellite-image
bitbake -e everpy | grep -E '^(S|UNPACKDIR)='
echo "meta-everpy: parse and dependency resolution OK ($build)"
