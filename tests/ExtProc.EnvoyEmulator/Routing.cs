using Envoy.Extensions.Filters.Http.ExtProc.V3;

namespace ExtProc.EnvoyEmulator;

/// <summary>A route: matchers (authority, path prefix, exact headers) and a cluster choice.</summary>
public sealed class Route
{
    public string Name { get; set; } = "route";

    /// <summary>Exact <c>:authority</c> match (the virtual host domain); null matches any.</summary>
    public string? Authority { get; set; }

    public string PathPrefix { get; set; } = "/";

    /// <summary>Exact header value matchers, all must match.</summary>
    public List<KeyValuePair<string, string>> HeaderMatchers { get; } = [];

    /// <summary>Header names that must be present, any value (<c>present_match: true</c>).</summary>
    public List<string> PresentHeaders { get; } = [];

    /// <summary>Fixed cluster (<c>route.cluster</c>).</summary>
    public string? Cluster { get; set; }

    /// <summary><c>route.cluster_header</c>: the cluster named by this request header.</summary>
    public string? ClusterHeader { get; set; }

    /// <summary>Per-route <c>ExtProcPerRoute</c> (spec §1.5); merged over the virtual host's.</summary>
    public ExtProcPerRouteConfig? ExtProcPerRoute { get; set; }

    public bool Matches(HttpHeaderList headers)
    {
        if (Authority is not null && !string.Equals(headers.Get(":authority"), Authority, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        if (!(headers.Get(":path") ?? "/").StartsWith(PathPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var matcher in HeaderMatchers)
        {
            if (headers.Get(matcher.Key) != matcher.Value)
            {
                return false;
            }
        }

        foreach (var name in PresentHeaders)
        {
            if (!headers.Contains(name))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The cluster this route sends to for these headers, or null (cluster_header absent).</summary>
    public string? SelectCluster(HttpHeaderList headers) =>
        ClusterHeader is not null ? headers.Get(ClusterHeader) : Cluster;
}

/// <summary>Per-route ext_proc override (<c>ExtProcPerRoute</c>).</summary>
public sealed class ExtProcPerRouteConfig
{
    /// <summary><c>disabled: true</c>: the filter does nothing for this route.</summary>
    public bool Disabled { get; set; }

    /// <summary><c>overrides.processing_mode</c>: replaces the whole mode.</summary>
    public ProcessingMode? ProcessingMode { get; set; }

    /// <summary><c>overrides.grpc_service</c>.</summary>
    public Uri? GrpcService { get; set; }

    /// <summary><c>overrides.grpc_initial_metadata</c>, merged per key over the filter's (route wins).</summary>
    public List<KeyValuePair<string, string>> GrpcInitialMetadata { get; } = [];

    public bool? FailureModeAllow { get; set; }

    /// <summary>
    /// Envoy's per-route merge: less specific (virtual host) first, the more specific (route) wins per field;
    /// only the most specific level's <see cref="Disabled"/> counts; initial metadata merges per key.
    /// </summary>
    public static ExtProcPerRouteConfig? Merge(ExtProcPerRouteConfig? lessSpecific, ExtProcPerRouteConfig? moreSpecific)
    {
        if (lessSpecific is null || moreSpecific is null)
        {
            return moreSpecific ?? lessSpecific;
        }

        var merged = new ExtProcPerRouteConfig
        {
            Disabled = moreSpecific.Disabled,
            ProcessingMode = moreSpecific.ProcessingMode ?? lessSpecific.ProcessingMode,
            GrpcService = moreSpecific.GrpcService ?? lessSpecific.GrpcService,
            FailureModeAllow = moreSpecific.FailureModeAllow ?? lessSpecific.FailureModeAllow,
        };
        merged.GrpcInitialMetadata.AddRange(lessSpecific.GrpcInitialMetadata);
        foreach (var entry in moreSpecific.GrpcInitialMetadata)
        {
            merged.GrpcInitialMetadata.RemoveAll(e => string.Equals(e.Key, entry.Key, StringComparison.OrdinalIgnoreCase));
            merged.GrpcInitialMetadata.Add(entry);
        }

        return merged;
    }
}

/// <summary>The route table: first matching route wins; no match is a 404 local reply.</summary>
public sealed class RouteTable
{
    public List<Route> Routes { get; } = [];

    /// <summary>Virtual-host level <c>ExtProcPerRoute</c> (less specific than a route's).</summary>
    public ExtProcPerRouteConfig? VirtualHostExtProcPerRoute { get; set; }

    /// <summary>Known clusters; when non-empty a route to any other cluster is a 503 <c>cluster_not_found</c>.</summary>
    public HashSet<string> Clusters { get; } = [];

    /// <summary>One catch-all route to the fixed cluster <paramref name="cluster"/>.</summary>
    public static RouteTable SingleCluster(string cluster = "upstream")
    {
        var table = new RouteTable();
        table.Routes.Add(new Route { Name = "default", Cluster = cluster });
        return table;
    }

    public Route? Match(HttpHeaderList headers)
    {
        foreach (var route in Routes)
        {
            if (route.Matches(headers))
            {
                return route;
            }
        }

        return null;
    }
}
