# shellcheck shell=bash
# Debian packages otpenroll needs to build and test; sourced by
# scripts/check and scripts/demo.  Installs what is missing when run as
# root, otherwise says what to install.
OE_PACKAGES=(
	build-essential autoconf automake libtool autoconf-archive pkg-config
	liboath-dev libsqlite3-dev libssl-dev libinih-dev libjansson-dev
	libqrencode-dev libpam0g-dev libesmtp-dev libcurl4-openssl-dev
	libcmocka-dev libpam-wrapper libpamtest0-dev pamtester oathtool
	libpam-oath sqlite3 openssl python3 clang libclang-rt-14-dev
	util-linux valgrind passwd python3-aiosmtpd postfix
	python3-cryptography curl faketime systemd man-db
	postgresql libpq-dev strace
)

oe_install_deps() {
	local missing=() p
	for p in "${OE_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages (install as root): ${missing[*]}" >&2
		return 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The directory this system's libpam loads modules from, as configure
# found it for the build directory $1.
oe_pam_moddir() {
	local d
	d=$(sed -n 's/^PAM_SYSTEM_MODDIR = //p' "$1/Makefile")
	[ -n "$d" ] && { echo "$d"; return 0; }
	echo "configure found no pam_permit.so: install the Debian package libpam-modules" >&2
	return 1
}
