# Installing Debian packages for linecut's scripts (sourced by scripts/test and
# scripts/setup-clients): as root directly, else through passwordless sudo, else an exit 2
# that names what to install.

# apt_install CALLER PACKAGE...
apt_install() {
    local caller=$1
    shift
    [ $# -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo)
        else
            echo "$caller: please install: $* (e.g. apt-get install $*)" >&2
            exit 2
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$caller: no apt-get here; please install: $*" >&2
        exit 2
    fi
    printf '==> installing %s\n' "$*"
    # The package lists are fetched once per call; a machine that has never updated them
    # (a fresh image) cannot install anything without it.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

# Whether a Debian package is installed.
have_package() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
