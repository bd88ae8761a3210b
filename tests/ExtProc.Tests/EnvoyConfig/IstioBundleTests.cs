using System.Text.Json.Nodes;
using ExtProc.Tests.Wire;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// envoy/istio/extproc.yaml cannot be applied here (no cluster, no Istio). Its Envoy parts are checked like
/// envoy.yaml: each EnvoyFilter patch value against Envoy's API and the ext_proc load-time rules; the Istio
/// envelope against the values Istio accepts; and the ext_proc cluster name against the Service it ships.
/// </summary>
public sealed class IstioBundleTests
{
    private const string HttpFilterType = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";

    private static readonly string[] IstioApplyTo = ["LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER", "ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER", "EXTENSION_CONFIG", "BOOTSTRAP", "LISTENER_FILTER"];
    private static readonly string[] IstioContexts = ["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"];
    private static readonly string[] IstioOperations = ["MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"];

    [Fact]
    public void ShippedIstioBundle_HttpFilterPatches_MatchEnvoyApiAndExtProcRules()
    {
        var errors = new List<string>();
        var patches = HttpFilterPatches(Load()).ToList();

        foreach (var (path, value) in patches)
        {
            errors.AddRange(new ProtoJsonChecker(EnvoyApiSchema.Index).Check(value, HttpFilterType).Select(e => $"{path}: {e}"));
            foreach (var (filterPath, filter) in ExtProcConfigChecks.FindTyped(value, path, ExtProcConfigChecks.FilterType))
            {
                errors.AddRange(ExtProcConfigChecks.CheckFilter(filter, filterPath));
            }
        }

        Assert.Single(patches);
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public void ShippedIstioBundle_EnvoyFilterEnvelope_UsesValuesIstioAccepts()
    {
        var errors = EnvelopeErrors(Load());

        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public void ShippedIstioBundle_ExtProcCluster_IsTheShippedServicesGrpcPort()
    {
        var documents = Load();
        var service = documents.Single(d => (string?)d["kind"] == "Service");
        var port = service["spec"]!["ports"]!.AsArray().Single(p => (string?)p!["appProtocol"] == "grpc")!;
        var expected = $"outbound|{(long)port["port"]!}||{(string?)service["metadata"]!["name"]}.{(string?)service["metadata"]!["namespace"]}.svc.cluster.local";

        var (_, value) = HttpFilterPatches(documents).Single();
        var cluster = (string?)value["typed_config"]!["grpc_service"]!["envoy_grpc"]!["cluster_name"];

        Assert.Equal(expected, cluster);
    }

    [Fact]
    public void Checks_BrokenPatch_AreReported()
    {
        var documents = Load();
        var (path, value) = HttpFilterPatches(documents).Single();
        value["typed_config"]!["processing_mode"]!["request_body_mode"] = "FULL_DUPLEX_STREAMED";
        value["typed_config"]!["message_timout"] = "1s";
        var filter = documents.Single(d => (string?)d["kind"] == "EnvoyFilter");
        filter["spec"]!["configPatches"]![0]!["match"]!["context"] = "SIDECAR";

        var schema = new ProtoJsonChecker(EnvoyApiSchema.Index).Check(value, HttpFilterType);
        var rules = ExtProcConfigChecks.CheckFilter((JsonObject)value["typed_config"]!, path);
        var envelope = EnvelopeErrors(documents);

        Assert.Contains(schema, e => e.Contains("message_timout", StringComparison.Ordinal));
        Assert.Contains(rules, e => e.Contains("FULL_DUPLEX_STREAMED", StringComparison.Ordinal));
        Assert.Contains(envelope, e => e.Contains("SIDECAR", StringComparison.Ordinal));
    }

    private static List<JsonNode> Load()
    {
        var text = File.ReadAllText(TestRepo.PathOf("envoy", "istio", "extproc.yaml")).Replace("\r\n", "\n", StringComparison.Ordinal);
        var documents = new List<JsonNode>();
        foreach (var part in text.Split("\n---\n"))
        {
            if (EnvoyYaml.Parse(part) is { } node)
            {
                documents.Add(node);
            }
        }

        return documents;
    }

    private static IEnumerable<(string Path, JsonNode Value)> HttpFilterPatches(List<JsonNode> documents)
    {
        for (var d = 0; d < documents.Count; d++)
        {
            if ((string?)documents[d]["kind"] != "EnvoyFilter")
            {
                continue;
            }

            var patches = documents[d]["spec"]!["configPatches"]!.AsArray();
            for (var i = 0; i < patches.Count; i++)
            {
                if ((string?)patches[i]!["applyTo"] == "HTTP_FILTER")
                {
                    yield return ($"doc[{d}].spec.configPatches[{i}].patch.value", patches[i]!["patch"]!["value"]!);
                }
            }
        }
    }

    private static List<string> EnvelopeErrors(List<JsonNode> documents)
    {
        var errors = new List<string>();
        foreach (var document in documents.Where(d => (string?)d["kind"] == "EnvoyFilter"))
        {
            var name = (string?)document["metadata"]?["name"];
            if ((string?)document["apiVersion"] is not ("networking.istio.io/v1alpha3" or "networking.istio.io/v1"))
            {
                errors.Add($"{name}: apiVersion");
            }

            foreach (var patch in document["spec"]!["configPatches"]!.AsArray())
            {
                Check(patch!["applyTo"], IstioApplyTo, $"{name}.applyTo", errors);
                Check(patch["match"]?["context"], IstioContexts, $"{name}.match.context", errors);
                Check(patch["patch"]?["operation"], IstioOperations, $"{name}.patch.operation", errors);
            }
        }

        return errors;
    }

    private static void Check(JsonNode? value, string[] allowed, string path, List<string> errors)
    {
        var text = (string?)value;
        if (text is not null && !allowed.Contains(text))
        {
            errors.Add($"{path}: '{text}' is not one of {string.Join(", ", allowed)}");
        }
    }
}
