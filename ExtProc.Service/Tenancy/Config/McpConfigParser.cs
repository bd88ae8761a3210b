using System.Globalization;

namespace ExtProc.Tenancy.Config;

/// <summary>
/// Reads the top-level <c>mcp:</c> section. Exposed tool names of routes with several servers are checked here,
/// so a collision or a name an LLM provider would refuse (<c>^[A-Za-z0-9_-]{1,64}$</c>) is a config error,
/// never a tool silently dropped or renamed at run time.
/// </summary>
internal static class McpConfigParser
{
    public const int MaxExposedNameLength = 64;

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

        var separator = mcp.String("separator") ?? McpConfig.DefaultSeparator;
        if (separator.Length is < 1 or > 4 || !IsToolNameText(separator))
        {
            errors.Add(mcp.PathOf("separator"), mcp.Node, "must be 1 to 4 characters of A-Z a-z 0-9 _ -");
        }

        var servers = ReadServers(mcp, errors, separator);
        var routes = ReadRoutes(mcp, errors, servers, separator);
        var sessions = ReadSessions(mcp.Map("sessions"));
        mcp.Finish();
        return new McpConfig(hosts, origins, separator, servers, routes) { Sessions = sessions };
    }

    private static McpSessionsConfig ReadSessions(MapReader? node)
    {
        if (node is null)
        {
            return McpSessionsConfig.Default;
        }

        var defaults = McpSessionsConfig.Default;
        var idle = node.Duration("idle", TimeSpan.FromMinutes(1), TimeSpan.FromDays(30)) ?? defaults.Idle;
        var capacity = node.Int("capacity", 100, 10_000_000) ?? defaults.Capacity;
        string? endpoint = null;
        var budget = defaults.CallBudget;
        if (node.Map("redis") is { } redis)
        {
            endpoint = redis.String("endpoint", required: true);
            budget = redis.Duration("callBudget", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(5)) ?? budget;
            redis.Finish();
        }

        node.Finish();
        return new McpSessionsConfig(idle, capacity, endpoint, budget);
    }

    private static List<McpServerConfig> ReadServers(MapReader mcp, ConfigErrors errors, string separator)
    {
        var list = new List<McpServerConfig>();
        var servers = mcp.Map("servers");
        if (servers is null)
        {
            return list;
        }

        foreach (var (name, node) in servers.Entries)
        {
            var path = servers.PathOf(name);
            if (!IsAlias(name) || name.Contains(separator, StringComparison.Ordinal))
            {
                errors.Add(path, node, "server names are 1 to 16 characters of a-z, 0-9 and '-', and never contain the separator");
            }

            var server = MapReader.Open(errors, path, node);
            if (server is null)
            {
                errors.Add(path, node, "must be a mapping with a cluster");
                continue;
            }

            var cluster = server.String("cluster", required: true);
            var tools = server.StringList("tools");
            server.Finish();
            if (cluster is not null)
            {
                list.Add(new McpServerConfig(name, cluster, tools));
            }
        }

        servers.Finish();
        return list;
    }

    private static List<McpRouteConfig> ReadRoutes(MapReader mcp, ConfigErrors errors, List<McpServerConfig> servers, string separator)
    {
        var list = new List<McpRouteConfig>();
        var routes = mcp.Sequence("routes");
        for (var i = 0; routes is not null && i < routes.Children.Count; i++)
        {
            var path = string.Create(CultureInfo.InvariantCulture, $"{mcp.PathOf("routes")}[{i}]");
            var route = MapReader.Open(errors, path, routes.Children[i]);
            if (route is null)
            {
                errors.Add(path, routes.Children[i], "must be a mapping with path and servers");
                continue;
            }

            var routePath = route.String("path", required: true);
            var names = route.StringList("servers", required: true) ?? [];
            route.Finish();
            if (routePath is null || !routePath.StartsWith('/') || routePath.Contains('?', StringComparison.Ordinal))
            {
                errors.Add(path, route.Node, "path must start with '/' and carry no query");
                continue;
            }

            foreach (var other in list)
            {
                if (other.Path == routePath)
                {
                    errors.Add(path, route.Node, $"path '{routePath}' is already routed");
                }
            }

            if (names.Count == 0)
            {
                errors.Add(path, route.Node, "servers must name at least one server");
            }

            var exposed = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var name in names)
            {
                var server = Find(servers, name);
                if (server is null)
                {
                    errors.Add(path, route.Node, $"server '{name}' is not defined under mcp.servers");
                    continue;
                }

                if (names.Count > 1)
                {
                    CheckExposedNames(errors, path, route, server, separator, exposed);
                }
            }

            list.Add(new McpRouteConfig(routePath, names));
        }

        return list;
    }

    private static void CheckExposedNames(ConfigErrors errors, string path, MapReader route, McpServerConfig server, string separator, Dictionary<string, string> exposed)
    {
        if (server.Tools is null)
        {
            errors.Add(path, route.Node, $"server '{server.Name}' must list its tools: on a route with several servers calls are resolved through a table");
            return;
        }

        foreach (var tool in server.Tools)
        {
            var name = server.Name + separator + tool;
            if (name.Length > MaxExposedNameLength || !IsToolNameText(name) || tool.Length == 0)
            {
                errors.Add(path, route.Node, $"tool '{name}' of server '{server.Name}' breaks the LLM tool name rule ^[A-Za-z0-9_-]{{1,64}}$");
            }
            else if (!exposed.TryAdd(name, server.Name))
            {
                errors.Add(path, route.Node, $"tool '{name}' is exposed by both '{exposed[name]}' and '{server.Name}'");
            }
        }
    }

    private static McpServerConfig? Find(List<McpServerConfig> servers, string name)
    {
        foreach (var server in servers)
        {
            if (server.Name == name)
            {
                return server;
            }
        }

        return null;
    }

    private static bool IsAlias(string name)
    {
        if (name.Length is < 1 or > 16)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsToolNameText(string text)
    {
        foreach (var c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }
}
