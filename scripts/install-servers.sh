#!/usr/bin/env bash
# Install the real servers the backend tests start on loopback.
#
# Usage: bash scripts/install-servers.sh [NAME...]
#   NAME: redis memcached rabbitmq mongodb osmem elasticsearch opensearch cassandra postgresql
#         (none = all of them)
#
# Idempotent: what is already installed is skipped, and `apt-get update` runs
# once, only when an apt package is missing. Everything comes from the
# Debian archive, PyPI or Maven Central; nothing is downloaded from anywhere else. Run as root
# (as CI does) or with sudo available. Python packages go into the python that
# runs the tests ($PYTHON, default python3).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
# SecantusDB only publishes betas; the pins keep tests reproducible.
SECANTUS_VERSION="0.7.0b3"
OSMEM_VERSION="0.1.6"
ALL=(redis memcached rabbitmq mongodb osmem elasticsearch opensearch cassandra postgresql)

apt_missing=()
# Wait for a dpkg lock held by another apt run instead of failing at once.
APT_OPTS=(-o DPkg::Lock::Timeout=600)
pip_missing=()
search_servers=()

usage() {
    echo "usage: bash scripts/install-servers.sh [${ALL[*]}]..." >&2
    exit 2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-servers: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

# need_apt BINARY PACKAGE: queue PACKAGE unless BINARY is already installed.
need_apt() {
    if [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; then
        echo "install-servers: $2 already installed ($1)"
    else
        apt_missing+=("$2")
    fi
}

# need_pip DIST VERSION: queue DIST==VERSION unless exactly that version is installed.
need_pip() {
    if "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" \
        >/dev/null 2>&1; then
        echo "install-servers: $1 $2 already installed"
    else
        pip_missing+=("$1==$2")
    fi
}

[ "$#" -gt 0 ] || set -- "${ALL[@]}"
for name in "$@"; do
    case "$name" in
        redis)
            need_apt redis-server redis-server
            need_apt redis-sentinel redis-sentinel
            ;;
        memcached) need_apt memcached memcached ;;
        rabbitmq)
            # The tests run the direct binary, not the /usr/sbin wrapper.
            need_apt /usr/lib/rabbitmq/bin/rabbitmq-server rabbitmq-server
            ;;
        mongodb) need_pip SecantusDB "$SECANTUS_VERSION" ;;
        osmem) need_pip osmem-server "$OSMEM_VERSION" ;;
        elasticsearch | opensearch)
            # From Maven Central by scripts/install-search-server.sh, after apt.
            need_apt mvn maven
            need_apt javac openjdk-17-jdk-headless
            need_apt unzip unzip
            search_servers+=("$name")
            ;;
        cassandra)
            # Apache Cassandra assembled from Maven Central (Java 17 and Maven from apt if missing).
            bash "$(dirname "${BASH_SOURCE[0]}")/install-cassandra.sh"
            ;;
        postgresql)
            # initdb and postgres live in /usr/lib/postgresql/<major>/bin, off PATH.
            if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
                echo "install-servers: postgresql already installed"
            else
                apt_missing+=(postgresql)
            fi
            ;;
        -h | --help) usage ;;
        *)
            echo "install-servers: unknown server '$name'; choose from: ${ALL[*]}" >&2
            exit 2
            ;;
    esac
done

if [ "${#apt_missing[@]}" -gt 0 ]; then
    # env, not export: sudo would drop an exported variable.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${apt_missing[@]}"
    # Debian starts packaged services where an init system runs; the tests
    # start their own on free ports, so stop any that apt started.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        for unit in redis-server redis-sentinel memcached rabbitmq-server postgresql; do
            as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
        done
    fi
fi

if [ "${#pip_missing[@]}" -gt 0 ]; then
    "$PYTHON" -m pip install --quiet "${pip_missing[@]}"
fi

for name in "${search_servers[@]}"; do
    as_root bash "$(dirname "${BASH_SOURCE[0]}")/install-search-server.sh" "$name"
done

echo "install-servers: ready: $*"
