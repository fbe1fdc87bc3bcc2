#!/usr/bin/env bash
# Install a real Elasticsearch 8.19 or OpenSearch 2.19 for the tests of
# resultstore-elasticsearch, from Maven Central (the only place these machines
# reach that has them), into a folder every user can read.
#
# Usage: bash scripts/install-search-server.sh elasticsearch|opensearch
#   (scripts/install-servers.sh calls this; it needs mvn, unzip, javac and jar)
#
# Env: RESULTSTORE_SERVERS_DIR (/opt/resultstore-servers), ES_VERSION (8.19.21),
#      OS_VERSION (2.19.6), RESULTSTORE_SERVER_USER (resultstore-search).
#
# Both products refuse to run as root, so as root a system user is created; the
# test fixtures (resultstore_contract.servers.elasticsearch / .opensearch) switch
# to it with setpriv. Idempotent: a finished install is left as it is.
#
# Elasticsearch: the integration-test zip (modules transport-netty4, x-pack-core,
# x-pack-security, apm; no 9.x on Maven Central) lacks Painless,
# _delete_by_query and GET /; a small plugin compiled here serves GET / and
# HEAD /, which the elasticsearch client's product check and ping() need.
# OpenSearch: the 2.x integration-test zip ships transport-netty4 only; the
# lang-painless module is assembled from its Maven Central jars.
set -euo pipefail

BASE="${RESULTSTORE_SERVERS_DIR:-/opt/resultstore-servers}"
ES_VERSION="${ES_VERSION:-8.19.21}"
OS_VERSION="${OS_VERSION:-2.19.6}"
RUN_USER="${RESULTSTORE_SERVER_USER:-resultstore-search}"
JAVA_HOME_17="${JAVA_HOME_17:-/usr/lib/jvm/java-17-openjdk-amd64}"
[ -x "$JAVA_HOME_17/bin/javac" ] || JAVA_HOME_17="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"

log() { echo "install-search-server: $*"; }

ensure_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    id "$RUN_USER" >/dev/null 2>&1 ||
        useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
}

# mvn_fetch DIR POM_DEPENDENCIES: copy the listed artifacts (and their runtime
# dependencies) from Maven Central into DIR/out.
mvn_fetch() {
    local dir=$1 deps=$2
    cat >"$dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.resultstore</groupId><artifactId>search-server-fetch</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencies>$deps</dependencies>
</project>
EOF
    (cd "$dir" && mvn -B -q dependency:copy-dependencies -DoutputDirectory="$dir/out" >"$dir/mvn.log" 2>&1) ||
        { cat "$dir/mvn.log" >&2; exit 1; }
}

es_root_plugin() {
    local home=$1 p=$1/plugins/resultstore-root-info
    [ -f "$p/resultstore-root-info.jar" ] && return 0
    local tmp
    tmp=$(mktemp -d)
    mkdir -p "$tmp/src/resultstore/esroot" "$tmp/classes" "$p"
    cat >"$tmp/src/resultstore/esroot/RootInfoPlugin.java" <<'JAVA'
package resultstore.esroot;

import java.util.Collection;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

/** GET / and HEAD / (cluster info): the integration-test zip has no rest-root module. */
public class RootInfoPlugin extends Plugin implements ActionPlugin {
    private volatile ClusterService clusterService;

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService = services.clusterService();
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry registry,
            RestController controller, ClusterSettings clusterSettings, IndexScopedSettings indexScopedSettings,
            SettingsFilter settingsFilter, IndexNameExpressionResolver resolver, Supplier<DiscoveryNodes> nodes,
            Predicate<NodeFeature> features) {
        return List.of(new Root());
    }

    private final class Root extends BaseRestHandler {
        @Override
        public String getName() {
            return "resultstore_root_info";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                Build build = Build.current();
                XContentBuilder out = channel.newBuilder();
                out.startObject();
                out.field("name", clusterService.localNode().getName());
                out.field("cluster_name", clusterService.getClusterName().value());
                out.field("cluster_uuid", clusterService.state().metadata().clusterUUID());
                out.startObject("version");
                out.field("number", build.qualifiedVersion());
                out.field("build_flavor", build.flavor());
                out.field("build_type", build.type().displayName());
                out.field("build_hash", build.hash());
                out.field("build_date", build.date());
                out.field("build_snapshot", build.isSnapshot());
                out.field("lucene_version", org.apache.lucene.util.Version.LATEST.toString());
                out.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
                out.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
                out.endObject();
                out.field("tagline", "You Know, for Search");
                out.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, out));
            };
        }
    }
}
JAVA
    "$JAVA_HOME_17/bin/javac" --release 17 -nowarn -cp "$home/lib/*" -d "$tmp/classes" \
        "$tmp/src/resultstore/esroot/RootInfoPlugin.java"
    "$JAVA_HOME_17/bin/jar" cf "$p/resultstore-root-info.jar" -C "$tmp/classes" .
    cat >"$p/plugin-descriptor.properties" <<EOF
description=GET / and HEAD / for the integration-test distribution (stands in for rest-root)
version=$ES_VERSION
name=resultstore-root-info
classname=resultstore.esroot.RootInfoPlugin
java.version=17
elasticsearch.version=$ES_VERSION
extended.plugins=
has.native.controller=false
EOF
    rm -rf "$tmp"
}

install_elasticsearch() {
    local home=$BASE/elasticsearch-$ES_VERSION
    if [ ! -x "$home/bin/elasticsearch" ]; then
        local tmp
        tmp=$(mktemp -d)
        mvn_fetch "$tmp" "<dependency><groupId>org.elasticsearch.distribution.integ-test-zip</groupId>
          <artifactId>elasticsearch</artifactId><version>$ES_VERSION</version><type>zip</type></dependency>"
        mkdir -p "$BASE"
        rm -rf "$home"
        unzip -q "$tmp/out/elasticsearch-$ES_VERSION.zip" -d "$BASE"
        rm -rf "$tmp"
    fi
    es_root_plugin "$home"
    chmod -R a+rX "$home"
    chmod a+rx "$BASE"
    ensure_user
    log "Elasticsearch $ES_VERSION ready in $home"
}

install_opensearch() {
    local home=$BASE/opensearch-$OS_VERSION
    local m=$home/modules/lang-painless
    if [ ! -x "$home/bin/opensearch" ] || [ ! -f "$m/plugin-descriptor.properties" ]; then
        local tmp
        tmp=$(mktemp -d)
        mvn_fetch "$tmp" "<dependency><groupId>org.opensearch.distribution.integ-test-zip</groupId>
          <artifactId>opensearch</artifactId><version>$OS_VERSION</version><type>zip</type></dependency>
          <dependency><groupId>org.opensearch.plugin</groupId><artifactId>lang-painless</artifactId>
          <version>$OS_VERSION</version><exclusions><exclusion><groupId>org.opensearch</groupId>
          <artifactId>opensearch</artifactId></exclusion></exclusions></dependency>"
        mkdir -p "$BASE"
        rm -rf "$home"
        unzip -q "$tmp/out/opensearch-$OS_VERSION.zip" -d "$BASE"
        if [ ! -f "$m/plugin-descriptor.properties" ]; then
            mkdir -p "$m"
            find "$tmp/out" -name '*.jar' -exec cp {} "$m/" \;
            local cls
            cls=$(unzip -Z1 "$m/lang-painless-$OS_VERSION.jar" |
                grep -oE '^org/opensearch/painless/Painless(Module)?Plugin\.class$' | head -1)
            cls=${cls%.class}
            cls=${cls//\//.}
            cat >"$m/plugin-descriptor.properties" <<EOF
description=Painless scripting, assembled from Maven Central jars
version=$OS_VERSION
name=lang-painless
classname=$cls
java.version=11
opensearch.version=$OS_VERSION
custom.foldername=
extended.plugins=
has.native.controller=false
EOF
            cat >"$m/plugin-security.policy" <<'EOF'
grant {
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
EOF
        fi
        rm -rf "$tmp"
    fi
    chmod -R a+rX "$home"
    chmod a+rx "$BASE"
    ensure_user
    log "OpenSearch $OS_VERSION ready in $home"
}

case "${1:-}" in
    elasticsearch) install_elasticsearch ;;
    opensearch) install_opensearch ;;
    *)
        echo "usage: bash scripts/install-search-server.sh elasticsearch|opensearch" >&2
        exit 2
        ;;
esac
