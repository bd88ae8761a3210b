using System.Text.Json.Nodes;
using ExtProc.Routing;
using ExtProc.Tenancy.Config;
using ExtProc.Tests.Wire;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// envoy/envoy-failover.yaml (ExtProc also as the upstream filter of each provider cluster) checked against
/// Envoy's API and ext_proc's load-time rules, and against envoy/extproc-failover.yaml: every provider is a
/// cluster whose hosts name it in their metadata, and each failover cluster walks its model's targets in order.
/// </summary>
public sealed class FailoverConfigTests
{
    private static JsonNode Envoy() => EnvoyYaml.Parse(File.ReadAllText(TestRepo.PathOf("envoy", "envoy-failover.yaml")))!;

    private static TenancyConfig ExtProcConfig()
    {
        var errors = new ConfigErrors();
        var config = TenancyConfigParser.Parse(File.ReadAllText(TestRepo.PathOf("envoy", "extproc-failover.yaml")), errors);
        Assert.True(config is not null, string.Join("\n", errors.All));
        return config!;
    }

    private static Dictionary<string, JsonObject> Clusters(JsonNode envoy) =>
        envoy["static_resources"]!["clusters"]!.AsArray().ToDictionary(c => c!["name"]!.GetValue<string>(), c => c!.AsObject());

    [Fact]
    public void EnvoyFailoverYaml_CheckedAgainstEnvoyApiAndExtProcLoadTimeRules_NoErrors()
    {
        var envoy = Envoy();

        var schema = new ProtoJsonChecker(EnvoyApiSchema.Index).Check(envoy, EnvoyApiSchema.Bootstrap);
        var loadTime = ExtProcConfigChecks.Check(envoy);

        Assert.True(schema.Count == 0, string.Join(Environment.NewLine, schema));
        Assert.True(loadTime.Count == 0, string.Join(Environment.NewLine, loadTime));
        Assert.Equal(3, ExtProcConfigChecks.FindTyped(envoy, "$", ExtProcConfigChecks.FilterType).Count());
    }

    [Fact]
    public void EveryProvider_IsAClusterWithTheUpstreamFilterLastBeforeTheCodec_AndHostsNamingIt()
    {
        var clusters = Clusters(Envoy());

        foreach (var provider in ExtProcConfig().Routing.Providers)
        {
            Assert.True(clusters.TryGetValue(provider.Cluster, out var cluster), $"no Envoy cluster {provider.Cluster}");
            var filters = cluster!["typed_extension_protocol_options"]!["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]!["http_filters"]!.AsArray();
            Assert.Equal(["envoy.filters.http.ext_proc", "envoy.filters.http.upstream_codec"], filters.Select(f => f!["name"]!.GetValue<string>()));
            var extProc = filters[0]!["typed_config"]!;
            Assert.Equal([RoutingAttributes.AttemptProvider], extProc["request_attributes"]!.AsArray().Select(a => a!.GetValue<string>()));
            Assert.Equal("BUFFERED", extProc["processing_mode"]!["request_body_mode"]!.GetValue<string>());
            Assert.False(extProc["failure_mode_allow"]!.GetValue<bool>());
            foreach (var endpoint in cluster["load_assignment"]!["endpoints"]!.AsArray().SelectMany(e => e!["lb_endpoints"]!.AsArray()))
            {
                Assert.Equal(provider.Name, endpoint!["metadata"]!["filter_metadata"]!["extproc"]!["provider"]!.GetValue<string>());
            }
        }
    }

    [Fact]
    public void FailoverCluster_IsAnAggregateOfTheModelsTargetsInPriorityOrder_RouteRetriesThemOn429And5xx()
    {
        var envoy = Envoy();
        var clusters = Clusters(envoy);
        var config = ExtProcConfig();

        foreach (var model in config.Routing.Models.Where(m => m.FailoverCluster is not null))
        {
            var aggregate = clusters[model.FailoverCluster!]["cluster_type"]!;
            Assert.Equal("envoy.clusters.aggregate", aggregate["name"]!.GetValue<string>());
            var expected = model.Targets.OrderBy(t => t.Priority)
                .Select(t => config.Routing.Providers.Single(p => p.Name == t.Provider).Cluster);
            Assert.Equal(expected, aggregate["typed_config"]!["clusters"]!.AsArray().Select(c => c!.GetValue<string>()));
        }

        var host = envoy["static_resources"]!["listeners"]![0]!["filter_chains"]![0]!["filters"]![0]!["typed_config"]!["route_config"]!["virtual_hosts"]![0]!;
        var route = host["routes"]![0]!["route"]!;
        Assert.Equal("x-extproc-cluster", route["cluster_header"]!.GetValue<string>());
        Assert.True(host["include_request_attempt_count"]!.GetValue<bool>());
        var retry = route["retry_policy"]!;
        Assert.Equal(["5xx", "reset", "connect-failure", "retriable-status-codes"], retry["retry_on"]!.GetValue<string>().Split(','));
        Assert.Equal([429L], retry["retriable_status_codes"]!.AsArray().Select(c => c!.GetValue<long>()));
        Assert.Equal("envoy.retry_priorities.previous_priorities", retry["retry_priority"]!["name"]!.GetValue<string>());
        Assert.True(config.Routing.Settings.UpstreamFilter);
    }
}
