#!/usr/bin/env bash
# Assemble Apache Cassandra from Maven Central for the tests (called by install-servers.sh).
#
# Usage: bash scripts/install-cassandra.sh
#
# Fetches org.apache.cassandra:cassandra-all and its runtime dependencies with
# Maven into $RESULTSTORE_CASSANDRA_HOME/lib (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/resultstore/cassandra-$CASSANDRA_VERSION),
# the folder the test fixtures (resultstore_contract.servers.cassandra) read.
# Installs Java 17 and Maven with apt-get when they are missing (as root).
# Idempotent: a folder with a finished install is left alone; concurrent runs
# wait for each other. Nothing comes from anywhere but Maven Central and Debian.
set -euo pipefail

CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.9}"
HOME_DIR="${RESULTSTORE_CASSANDRA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/resultstore/cassandra-$CASSANDRA_VERSION}"
LIB="$HOME_DIR/lib"
# The maven-dependency-plugin version that copies the jars (pinned: reproducible).
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

log() { echo "install-cassandra: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

installed() { [ -f "$HOME_DIR/.installed" ] && [ -d "$LIB" ]; }

if installed; then
    log "Cassandra $CASSANDRA_VERSION already installed in $HOME_DIR"
    exit 0
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Cassandra 5.0 runs on Java 11 or 17; the tests use the java on PATH.
java_major() {
    java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'
}
need=()
if ! command -v java >/dev/null 2>&1; then
    need+=(openjdk-17-jre-headless)
else
    case "$(java_major)" in
        11 | 17) ;;
        *) need+=(openjdk-17-jre-headless) ;;
    esac
fi
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]} with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${need[@]}" >&2
    if [ "$(java_major)" != 17 ] && [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]; then
        log "note: java on PATH is not 17; the fixtures honour \$JAVA (e.g. /usr/lib/jvm/java-17-openjdk-amd64/bin/java)"
    fi
fi

mkdir -p "$HOME_DIR"
# One install at a time into the same folder (parallel CI jobs, two nox sessions).
exec 9>"$HOME_DIR/.lock"
command -v flock >/dev/null 2>&1 && flock 9
if installed; then
    log "installed meanwhile by another process"
    exit 0
fi

work="$HOME_DIR/build"
rm -rf "$work" "$LIB.tmp"
mkdir -p "$work"
cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.resultstore</groupId><artifactId>cassandra-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
start=$SECONDS
log "resolving org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION and its runtime dependencies"
# A private local repository keeps the folder self-contained; it goes once the jars are copied.
if ! (cd "$work" && mvn -B -q -Dmaven.repo.local="$work/m2" \
    "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DoutputDirectory="$LIB.tmp" -DincludeScope=runtime \
    -DexcludeClassifiers=osx-x86_64,osx-aarch_64,windows-x86_64,linux-riscv64 \
    >"$work/mvn.log" 2>&1); then
    tail -40 "$work/mvn.log" >&2
    die "maven failed (log: $work/mvn.log)"
fi
[ -f "$LIB.tmp/cassandra-all-$CASSANDRA_VERSION.jar" ] || die "cassandra-all jar missing after the maven run"
ls "$LIB.tmp"/jamm-*.jar >/dev/null 2>&1 || die "jamm jar (the memory-measuring agent) missing after the maven run"
rm -rf "$LIB"
mv "$LIB.tmp" "$LIB"
rm -rf "$work"
echo "$CASSANDRA_VERSION" >"$HOME_DIR/.installed"
log "installed $(ls "$LIB" | wc -l) jars ($(du -sh "$LIB" | cut -f1)) in $HOME_DIR in $((SECONDS - start)) s"
