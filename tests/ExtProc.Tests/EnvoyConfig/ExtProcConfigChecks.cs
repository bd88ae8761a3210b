using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ExtProc.Tests.EnvoyConfig;

/// <summary>
/// The load-time checks Envoy's ext_proc factory (config.cc) and PGV apply to the filter config, coded by hand
/// (spec §1.6), plus the bootstrap cross-references Envoy resolves at startup (gRPC cluster exists and speaks
/// HTTP/2, route clusters exist). Works on the JSON form, so it also judges configs that use fields newer than the
/// API copy the schema walker knows (e.g. FULL_DUPLEX_STREAMED, http_service).
/// </summary>
internal static class ExtProcConfigChecks
{
    public const string FilterType = "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor";
    public const string PerRouteType = "envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute";
    private const string HttpProtocolOptionsType = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

    // Current (Envoy 1.37) enum values, spec §1.5; defined_only in Envoy.
    private static readonly string[] s_headerModes = ["DEFAULT", "SEND", "SKIP"];
    private static readonly string[] s_bodyModes = ["NONE", "STREAMED", "BUFFERED", "BUFFERED_PARTIAL", "FULL_DUPLEX_STREAMED", "GRPC"];
    private static readonly string[] s_routeCacheActions = ["DEFAULT", "CLEAR", "RETAIN"];

    /// <summary>Every error in the bootstrap: each ext_proc filter and per-route config, and the cross-references.</summary>
    public static IReadOnlyList<string> Check(JsonNode? bootstrap)
    {
        var errors = new List<string>();
        var clusters = (bootstrap?["static_resources"]?["clusters"] as JsonArray ?? [])
            .OfType<JsonObject>()
            .Where(static c => c["name"] is JsonValue)
            .ToDictionary(static c => c["name"]!.GetValue<string>(), StringComparer.Ordinal);

        foreach (var (path, filter) in FindTyped(bootstrap, "$", FilterType))
        {
            errors.AddRange(CheckFilter(filter, path));
            if (filter["grpc_service"]?["envoy_grpc"]?["cluster_name"] is JsonValue clusterName)
            {
                var name = clusterName.GetValue<string>();
                if (!clusters.TryGetValue(name, out var cluster))
                {
                    errors.Add($"{path}.grpc_service.envoy_grpc.cluster_name: unknown gRPC client cluster '{name}' (not in static_resources.clusters)");
                }
                else if (!SpeaksHttp2(cluster))
                {
                    errors.Add($"{path}.grpc_service.envoy_grpc.cluster_name: cluster '{name}' does not enable HTTP/2, which gRPC needs");
                }
            }
        }

        foreach (var (path, perRoute) in FindTyped(bootstrap, "$", PerRouteType))
        {
            if (perRoute["disabled"] is JsonValue disabled && disabled.GetValueKind() != JsonValueKind.True)
            {
                errors.Add($"{path}.disabled: must be true when set (PGV const)");
            }

            if (perRoute["overrides"]?["processing_mode"] is JsonObject mode)
            {
                CheckModeEnums(mode, $"{path}.overrides.processing_mode", errors);
            }
        }

        foreach (var (path, cluster) in RouteClusters(bootstrap, "$"))
        {
            if (!clusters.ContainsKey(cluster))
            {
                errors.Add($"{path}: route to unknown cluster '{cluster}'");
            }
        }

        return errors;
    }

    /// <summary>The §1.6 checks for one ExternalProcessor filter config.</summary>
    public static IReadOnlyList<string> CheckFilter(JsonObject filter, string path)
    {
        var errors = new List<string>();
        var hasGrpc = filter["grpc_service"] is not null;
        var hasHttp = filter["http_service"] is not null;
        if (hasGrpc == hasHttp)
        {
            errors.Add($"{path}: One and only one of grpc_service or http_service must be configured (found {(hasGrpc ? "both" : "neither")})");
        }

        var mode = filter["processing_mode"] as JsonObject;
        if (mode is not null)
        {
            CheckModeEnums(mode, $"{path}.processing_mode", errors);
        }

        var requestBody = EnumName(mode?["request_body_mode"], s_bodyModes) ?? "NONE";
        var responseBody = EnumName(mode?["response_body_mode"], s_bodyModes) ?? "NONE";
        var requestTrailer = EnumName(mode?["request_trailer_mode"], s_headerModes) ?? "DEFAULT";
        var responseTrailer = EnumName(mode?["response_trailer_mode"], s_headerModes) ?? "DEFAULT";

        if (hasHttp && (requestBody != "NONE" || responseBody != "NONE"))
        {
            errors.Add($"{path}: If the ext_proc filter is configured with http_service instead of gRPC, then the processing modes of this filter can not be configured to send body (request_body_mode {requestBody}, response_body_mode {responseBody})");
        }

        if (hasHttp && (requestTrailer == "SEND" || responseTrailer == "SEND"))
        {
            errors.Add($"{path}: If the ext_proc filter is configured with http_service instead of gRPC, then the processing modes of this filter can not be configured to send trailers");
        }

        if (requestBody == "FULL_DUPLEX_STREAMED" && requestTrailer != "SEND")
        {
            errors.Add($"{path}: If the ext_proc filter has the request_body_mode set to FULL_DUPLEX_STREAMED, then the request_trailer_mode has to be set to SEND");
        }

        if (responseBody == "FULL_DUPLEX_STREAMED" && responseTrailer != "SEND")
        {
            errors.Add($"{path}: If the ext_proc filter has the response_body_mode set to FULL_DUPLEX_STREAMED, then the response_trailer_mode has to be set to SEND");
        }

        var disableClear = filter["disable_clear_route_cache"] is JsonValue d && d.GetValueKind() == JsonValueKind.True;
        var routeCacheAction = EnumName(filter["route_cache_action"], s_routeCacheActions);
        if (filter["route_cache_action"] is not null && routeCacheAction is null)
        {
            errors.Add($"{path}.route_cache_action: not a defined RouteCacheAction ({string.Join(", ", s_routeCacheActions)})");
        }

        if (disableClear && routeCacheAction is not null and not "DEFAULT")
        {
            errors.Add($"{path}: disable_clear_route_cache and route_cache_action {routeCacheAction} cannot be set together");
        }

        foreach (var timeout in new[] { "message_timeout", "max_message_timeout" })
        {
            if (filter[timeout] is JsonValue t && t.GetValueKind() == JsonValueKind.String && Seconds(t.GetValue<string>()) is { } seconds
                && seconds is < 0 or > 3600)
            {
                errors.Add($"{path}.{timeout}: must be between 0s and 3600s (got {t.GetValue<string>()})");
            }
        }

        return errors;
    }

    /// <summary>Every object whose "@type" names <paramref name="typeName"/>, with its JSON path.</summary>
    public static IEnumerable<(string Path, JsonObject Config)> FindTyped(JsonNode? node, string path, string typeName)
    {
        switch (node)
        {
            case JsonObject obj:
                if (obj["@type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String && t.GetValue<string>().EndsWith("/" + typeName, StringComparison.Ordinal))
                {
                    yield return (path, obj);
                }

                foreach (var (key, child) in obj)
                {
                    foreach (var found in FindTyped(child, $"{path}.{key}", typeName))
                    {
                        yield return found;
                    }
                }

                break;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    foreach (var found in FindTyped(array[i], $"{path}[{i}]", typeName))
                    {
                        yield return found;
                    }
                }

                break;
        }
    }

    private static void CheckModeEnums(JsonObject mode, string path, List<string> errors)
    {
        foreach (var (key, value) in mode)
        {
            var allowed = key.EndsWith("body_mode", StringComparison.Ordinal) ? s_bodyModes : s_headerModes;
            if (value is not null && EnumName(value, allowed) is null)
            {
                errors.Add($"{path}.{key}: {value.ToJsonString()} is not a defined value ({string.Join(", ", allowed)})");
            }
        }
    }

    private static string? EnumName(JsonNode? value, string[] names)
    {
        if (value is not JsonValue v)
        {
            return null;
        }

        return v.GetValueKind() switch
        {
            JsonValueKind.String => names.Contains(v.GetValue<string>()) ? v.GetValue<string>() : null,
            JsonValueKind.Number => int.TryParse(v.ToJsonString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n < names.Length ? names[n] : null,
            _ => null,
        };
    }

    private static decimal? Seconds(string duration) =>
        duration.EndsWith('s') && decimal.TryParse(duration[..^1], NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var s)
            ? s
            : null;

    private static bool SpeaksHttp2(JsonObject cluster)
    {
        if (cluster["http2_protocol_options"] is not null)
        {
            return true; // deprecated cluster-level form
        }

        var options = cluster["typed_extension_protocol_options"]?[HttpProtocolOptionsType];
        return options?["explicit_http_config"]?["http2_protocol_options"] is not null
            || options?["auto_config"]?["http2_protocol_options"] is not null
            || options?["use_downstream_protocol_config"]?["http2_protocol_options"] is not null;
    }

    private static IEnumerable<(string Path, string Cluster)> RouteClusters(JsonNode? node, string path)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, child) in obj)
                {
                    // A RouteAction's static target (cluster_header and weighted clusters are resolved per request).
                    if (key == "cluster" && child is JsonValue v && v.GetValueKind() == JsonValueKind.String && path.EndsWith(".route", StringComparison.Ordinal))
                    {
                        yield return ($"{path}.cluster", v.GetValue<string>());
                    }

                    foreach (var found in RouteClusters(child, $"{path}.{key}"))
                    {
                        yield return found;
                    }
                }

                break;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    foreach (var found in RouteClusters(array[i], $"{path}[{i}]"))
                    {
                        yield return found;
                    }
                }

                break;
        }
    }
}
