namespace ExtProc.Tenancy.Config;

/// <summary>Reads the top-level <c>mcp:</c> section.</summary>
internal static class McpConfigParser
{
    public static McpConfig Read(MapReader? mcp, ConfigErrors errors)
    {
        if (mcp is null)
        {
            return McpConfig.Default;
        }

        var hosts = mcp.StringList("allowedHosts");
        for (var i = 0; hosts is not null && i < hosts.Count; i++)
        {
            if (hosts[i].Length == 0 || hosts[i].Contains(':', StringComparison.Ordinal) && !hosts[i].StartsWith('[') || hosts[i].Contains('/', StringComparison.Ordinal))
            {
                errors.Add(mcp.PathOf("allowedHosts"), mcp.Node, $"'{hosts[i]}' must be a host name or address without scheme or port (IPv6 in brackets)");
            }
        }

        var origins = mcp.StringList("allowedOrigins");
        for (var i = 0; origins is not null && i < origins.Count; i++)
        {
            if (!Uri.TryCreate(origins[i], UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
                || uri.AbsolutePath != "/" || origins[i].EndsWith('/'))
            {
                errors.Add(mcp.PathOf("allowedOrigins"), mcp.Node, $"'{origins[i]}' must be an origin: http(s)://host[:port], no path");
            }
        }

        mcp.Finish();
        return new McpConfig(hosts, origins);
    }
}
