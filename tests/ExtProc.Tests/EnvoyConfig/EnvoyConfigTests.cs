using System.Text.Json.Nodes;
using ExtProc.Tests.Wire;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// envoy/envoy.yaml cannot be run here (no Envoy binary), so it is proven well-formed instead: checked against
/// Envoy's API definitions (descriptor-driven proto3 JSON walk) and against the ext_proc load-time rules (§1.6).
/// Negative cases mutate the parsed config so neither check can pass vacuously.
/// </summary>
public sealed class EnvoyConfigTests
{
    private const string ExtProcUrl = "type.googleapis.com/" + ExtProcConfigChecks.FilterType;

    private static string ShippedYamlPath => TestRepo.PathOf("envoy", "envoy.yaml");

    [Fact]
    public void ShippedEnvoyYaml_CheckedAgainstEnvoyApi_HasNoErrors()
    {
        var errors = SchemaErrors(LoadShipped());

        Assert.True(errors.Count == 0, $"envoy/envoy.yaml does not match Envoy's API ({errors.Count} error(s)):{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", errors)}");
    }

    [Fact]
    public void ShippedEnvoyYaml_ExtProcLoadTimeChecks_Pass()
    {
        var config = LoadShipped();

        var errors = ExtProcConfigChecks.Check(config);

        Assert.True(errors.Count == 0, $"envoy/envoy.yaml fails the ext_proc load-time checks:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", errors)}");
        Assert.Single(ExtProcConfigChecks.FindTyped(config, "$", ExtProcConfigChecks.FilterType));
    }

    [Fact]
    public void ShippedEnvoyYaml_ExtProcFilter_HasTheIntendedSettings()
    {
        var config = LoadShipped();
        var hcm = config!["static_resources"]!["listeners"]![0]!["filter_chains"]![0]!["filters"]![0]!["typed_config"]!;
        var filters = hcm["http_filters"]!.AsArray();
        var extProc = ExtProc(config);

        Assert.Equal("envoy.filters.http.ext_proc", filters[0]!["name"]!.GetValue<string>());
        Assert.Equal("envoy.filters.http.router", filters[^1]!["name"]!.GetValue<string>());
        Assert.Equal("extproc", extProc["grpc_service"]!["envoy_grpc"]!["cluster_name"]!.GetValue<string>());
        Assert.False(extProc["failure_mode_allow"]!.GetValue<bool>());
        Assert.True(extProc["allow_mode_override"]!.GetValue<bool>());
        var mode = extProc["processing_mode"]!;
        Assert.Equal(["SEND", "SEND", "BUFFERED", "NONE", "SKIP", "SKIP"], new[]
        {
            "request_header_mode", "response_header_mode", "request_body_mode", "response_body_mode", "request_trailer_mode", "response_trailer_mode",
        }.Select(k => mode[k]!.GetValue<string>()));
        Assert.Equal("1s", extProc["message_timeout"]!.GetValue<string>());
        Assert.Equal("10s", extProc["max_message_timeout"]!.GetValue<string>());
        Assert.Equal(
            ["connection.uri_san_peer_certificate", "connection.subject_peer_certificate", "source.address", "request.id"],
            extProc["request_attributes"]!.AsArray().Select(static a => a!.GetValue<string>()));
        Assert.Equal(["extproc"], extProc["metadata_options"]!["receiving_namespaces"]!["untyped"]!.AsArray().Select(static a => a!.GetValue<string>()));
        Assert.Equal(8 * 1024 * 1024, config["static_resources"]!["listeners"]![0]!["per_connection_buffer_limit_bytes"]!.GetValue<long>());
        Assert.Equal(10000, config["static_resources"]!["listeners"]![0]!["address"]!["socket_address"]!["port_value"]!.GetValue<long>());
        var routes = hcm["route_config"]!["virtual_hosts"]![0]!["routes"]!.AsArray();
        Assert.Equal("x-extproc-cluster", routes[0]!["route"]!["cluster_header"]!.GetValue<string>());
        var clusters = config["static_resources"]!["clusters"]!.AsArray();
        Assert.Equal(["extproc", "openai", "anthropic"], clusters.Select(static c => c!["name"]!.GetValue<string>()));
        var extProcCluster = clusters[0]!;
        Assert.Equal("STRICT_DNS", extProcCluster["type"]!.GetValue<string>());
        var socket = extProcCluster["load_assignment"]!["endpoints"]![0]!["lb_endpoints"]![0]!["endpoint"]!["address"]!["socket_address"]!;
        Assert.Equal("127.0.0.1", socket["address"]!.GetValue<string>());
        Assert.Equal(50051, socket["port_value"]!.GetValue<long>());
    }

    public static TheoryData<string, string> SchemaViolations() => new()
    {
        { "typo in a field name", "$.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.failure_mode_alow: unknown field 'failure_mode_alow'" },
        { "bool given as a string", "failure_mode_allow: expected true or false, got string \"false\"" },
        { "duration given as a number", "message_timeout: expected a Duration string such as \"1s\"" },
        { "port given as a word", "port_value: expected an unsigned 32-bit integer, got string \"http\"" },
        { "string field given a plain YAML number", "stat_prefix: expected a string, got number 123" },
        { "unknown @type", "typed_config.http_filters[0].typed_config.@type: unknown type 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcessor'" },
        { "undefined enum name", "processing_mode.request_body_mode: 'BUFFER' is not a value of enum" },
        { "enum value newer than the 2024 API", "processing_mode.request_body_mode: 'FULL_DUPLEX_STREAMED' is not a value of enum" },
        { "undefined enum number", "processing_mode.response_body_mode: 9 is not a defined number of enum" },
        { "two members of one oneof", "oneof target_specifier of envoy.config.core.v3.GrpcService has both 'envoy_grpc' and 'google_grpc'" },
        { "required message missing", "grpc_service: required field envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor.grpc_service is missing" },
        { "required string empty", "cluster_name: cluster_name must be at least 1 character(s) long" },
        { "list where an object belongs", "metadata_options: expected an object for envoy.extensions.filters.http.ext_proc.v3.MetadataOptions, got an array" },
        { "unknown field inside a typed_config of the HCM", "typed_config.stat_prefx: unknown field 'stat_prefx'" },
    };

    [Theory]
    [MemberData(nameof(SchemaViolations))]
    public void SchemaCheck_MutatedConfig_ReportsTheViolation(string violation, string expected)
    {
        var config = LoadShipped();
        var extProc = ExtProc(config);
        var hcm = config!["static_resources"]!["listeners"]![0]!["filter_chains"]![0]!["filters"]![0]!["typed_config"]!.AsObject();
        switch (violation)
        {
            case "typo in a field name":
                extProc["failure_mode_alow"] = extProc["failure_mode_allow"]!.DeepClone();
                extProc.Remove("failure_mode_allow");
                break;
            case "bool given as a string":
                extProc["failure_mode_allow"] = "false";
                break;
            case "duration given as a number":
                extProc["message_timeout"] = 1;
                break;
            case "port given as a word":
                config["admin"]!["address"]!["socket_address"]!["port_value"] = "http";
                break;
            case "string field given a plain YAML number":
                config = EnvoyYaml.Parse(File.ReadAllText(ShippedYamlPath).Replace("stat_prefix: ingress_http", "stat_prefix: 123", StringComparison.Ordinal));
                break;
            case "unknown @type":
                extProc["@type"] = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcessor";
                break;
            case "undefined enum name":
                extProc["processing_mode"]!["request_body_mode"] = "BUFFER";
                break;
            case "enum value newer than the 2024 API":
                extProc["processing_mode"]!["request_body_mode"] = "FULL_DUPLEX_STREAMED";
                break;
            case "undefined enum number":
                extProc["processing_mode"]!["response_body_mode"] = 9;
                break;
            case "two members of one oneof":
                extProc["grpc_service"]!["google_grpc"] = new JsonObject { ["target_uri"] = "127.0.0.1:50051", ["stat_prefix"] = "extproc" };
                break;
            case "required message missing":
                extProc.Remove("grpc_service");
                break;
            case "required string empty":
                extProc["grpc_service"]!["envoy_grpc"]!["cluster_name"] = string.Empty;
                break;
            case "list where an object belongs":
                extProc["metadata_options"] = new JsonArray();
                break;
            case "unknown field inside a typed_config of the HCM":
                hcm["stat_prefx"] = "x";
                break;
            default:
                throw new ArgumentException(violation);
        }

        var errors = SchemaErrors(config);

        Assert.True(errors.Any(e => e.Contains(expected, StringComparison.Ordinal)),
            $"'{violation}': expected an error containing \"{expected}\"; got:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", errors)}");
    }

    public static TheoryData<string, string> LoadTimeViolations() => new()
    {
        { "neither grpc_service nor http_service", "One and only one of grpc_service or http_service must be configured (found neither)" },
        { "both grpc_service and http_service", "One and only one of grpc_service or http_service must be configured (found both)" },
        { "http_service with a body mode", "configured with http_service instead of gRPC, then the processing modes of this filter can not be configured to send body" },
        { "http_service with trailers", "configured with http_service instead of gRPC, then the processing modes of this filter can not be configured to send trailers" },
        { "request FULL_DUPLEX_STREAMED without trailers", "If the ext_proc filter has the request_body_mode set to FULL_DUPLEX_STREAMED, then the request_trailer_mode has to be set to SEND" },
        { "response FULL_DUPLEX_STREAMED without trailers", "If the ext_proc filter has the response_body_mode set to FULL_DUPLEX_STREAMED, then the response_trailer_mode has to be set to SEND" },
        { "disable_clear_route_cache with route_cache_action", "disable_clear_route_cache and route_cache_action CLEAR cannot be set together" },
        { "undefined mode value", "processing_mode.request_header_mode: \"SOMETIMES\" is not a defined value" },
        { "message_timeout above 3600s", "message_timeout: must be between 0s and 3600s (got 3601s)" },
        { "unknown gRPC cluster", "unknown gRPC client cluster 'ext-proc'" },
        { "gRPC cluster without HTTP/2", "cluster 'extproc' does not enable HTTP/2" },
        { "per-route disabled false", "disabled: must be true when set" },
    };

    [Theory]
    [MemberData(nameof(LoadTimeViolations))]
    public void LoadTimeCheck_MutatedConfig_ReportsTheViolation(string violation, string expected)
    {
        var config = LoadShipped();
        var extProc = ExtProc(config);
        var mode = extProc["processing_mode"]!.AsObject();
        switch (violation)
        {
            case "neither grpc_service nor http_service":
                extProc.Remove("grpc_service");
                break;
            case "both grpc_service and http_service":
                extProc["http_service"] = HttpService();
                break;
            case "http_service with a body mode":
                extProc.Remove("grpc_service");
                extProc["http_service"] = HttpService();
                break;
            case "http_service with trailers":
                extProc.Remove("grpc_service");
                extProc["http_service"] = HttpService();
                mode["request_body_mode"] = "NONE";
                mode["response_trailer_mode"] = "SEND";
                break;
            case "request FULL_DUPLEX_STREAMED without trailers":
                mode["request_body_mode"] = "FULL_DUPLEX_STREAMED";
                break;
            case "response FULL_DUPLEX_STREAMED without trailers":
                mode["response_body_mode"] = 4;
                mode.Remove("response_trailer_mode");
                break;
            case "disable_clear_route_cache with route_cache_action":
                extProc["disable_clear_route_cache"] = true;
                extProc["route_cache_action"] = "CLEAR";
                break;
            case "undefined mode value":
                mode["request_header_mode"] = "SOMETIMES";
                break;
            case "message_timeout above 3600s":
                extProc["message_timeout"] = "3601s";
                break;
            case "unknown gRPC cluster":
                extProc["grpc_service"]!["envoy_grpc"]!["cluster_name"] = "ext-proc";
                break;
            case "gRPC cluster without HTTP/2":
                config!["static_resources"]!["clusters"]![0]!.AsObject().Remove("typed_extension_protocol_options");
                break;
            case "per-route disabled false":
                var route = config!["static_resources"]!["listeners"]![0]!["filter_chains"]![0]!["filters"]![0]!["typed_config"]!["route_config"]!["virtual_hosts"]![0]!["routes"]![1]!.AsObject();
                route["typed_per_filter_config"] = new JsonObject
                {
                    ["envoy.filters.http.ext_proc"] = new JsonObject { ["@type"] = "type.googleapis.com/" + ExtProcConfigChecks.PerRouteType, ["disabled"] = false },
                };
                break;
            default:
                throw new ArgumentException(violation);
        }

        var errors = ExtProcConfigChecks.Check(config);

        Assert.True(errors.Any(e => e.Contains(expected, StringComparison.Ordinal)),
            $"'{violation}': expected an error containing \"{expected}\"; got:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", errors)}");
    }

    [Fact]
    public void LoadTimeCheck_FullDuplexWithTrailersSent_IsAccepted()
    {
        // The rule rejects duplex without trailers, not duplex itself (Envoy >= 1.34 configs stay expressible).
        var config = LoadShipped();
        var mode = ExtProc(config)["processing_mode"]!.AsObject();
        mode["request_body_mode"] = "FULL_DUPLEX_STREAMED";
        mode["request_trailer_mode"] = "SEND";
        mode["response_body_mode"] = "FULL_DUPLEX_STREAMED";
        mode["response_trailer_mode"] = "SEND";

        Assert.Empty(ExtProcConfigChecks.Check(config));
    }

    [Fact]
    public void SchemaCheck_AnyHoldingWellKnownTypeAndYamlSpellings_AreAccepted()
    {
        // Envoy's YAML conventions the walker must accept: quoted numbers for integers, yes/no booleans, null as unset,
        // an Any holding a well-known type under "value", wrappers as bare scalars, Struct as free JSON.
        var config = LoadShipped();
        var extProc = ExtProc(config);
        config!["admin"]!["address"]!["socket_address"]!["port_value"] = "9901";
        extProc["filter_metadata"] = JsonNode.Parse("""{"a":[1,"x",{"b":null}],"c":true}""");
        extProc["stat_prefix"] = null;
        extProc["deferred_close_timeout"] = "0.250s";
        config["static_resources"]!["clusters"]![0]!["metadata"] = JsonNode.Parse(
            """{"typed_filter_metadata":{"x":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}}}""");
        var yamlBools = EnvoyYaml.Parse("a: yes\nb: Off\nc: '10'\nd: 0x10\ne: 1.5\nf: ~\ng: 3000000000\n")!;
        extProc["failure_mode_allow"] = yamlBools["b"]!.DeepClone();
        extProc["allow_mode_override"] = yamlBools["a"]!.DeepClone();

        var errors = SchemaErrors(config);

        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
        Assert.Equal("10", yamlBools["c"]!.GetValue<string>());
        Assert.Equal(16, yamlBools["d"]!.GetValue<long>());
        Assert.Equal(1.5, yamlBools["e"]!.GetValue<double>());
        Assert.Null(yamlBools["f"]);
        Assert.Equal("3000000000", yamlBools["g"]!.GetValue<string>());
    }

    private static JsonObject HttpService() => new()
    {
        ["http_service"] = new JsonObject { ["http_uri"] = new JsonObject { ["uri"] = "http://127.0.0.1:8080", ["cluster"] = "extproc", ["timeout"] = "1s" } },
    };

    private static JsonObject ExtProc(JsonNode? config) =>
        ExtProcConfigChecks.FindTyped(config, "$", ExtProcConfigChecks.FilterType).Single().Config;

    private static JsonNode? LoadShipped()
    {
        Assert.True(File.Exists(ShippedYamlPath), $"{ShippedYamlPath} is missing");
        return EnvoyYaml.Parse(File.ReadAllText(ShippedYamlPath));
    }

    private static IReadOnlyList<string> SchemaErrors(JsonNode? config) =>
        new ProtoJsonChecker(EnvoyApiSchema.Index).Check(config, EnvoyApiSchema.Bootstrap);
}
