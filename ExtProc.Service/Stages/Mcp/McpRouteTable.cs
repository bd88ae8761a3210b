using System.Collections.Frozen;
using ExtProc.Tenancy.Config;

namespace ExtProc.Stages.Mcp;

/// <summary>
/// MCP endpoint paths → their servers, built once per config. A route with one server passes tool names
/// through; a route with several resolves an exposed <c>server__tool</c> name through a table built from the
/// config (never by splitting the string), so an unlisted or forged name simply has no entry.
/// </summary>
internal sealed class McpRouteTable
{
    private readonly FrozenDictionary<string, McpRoute> _routes;

    public McpRouteTable(McpConfig config)
    {
        var servers = new Dictionary<string, McpServerConfig>(StringComparer.Ordinal);
        foreach (var server in config.Servers)
        {
            servers[server.Name] = server;
        }

        var routes = new Dictionary<string, McpRoute>(StringComparer.Ordinal);
        foreach (var route in config.Routes)
        {
            if (route.Servers.Count == 1)
            {
                routes[route.Path] = new McpRoute(servers[route.Servers[0]].Cluster, null);
                continue;
            }

            var tools = new Dictionary<string, McpRoutedTool>(StringComparer.Ordinal);
            foreach (var name in route.Servers)
            {
                var server = servers[name];
                foreach (var tool in server.Tools ?? [])
                {
                    tools[server.Name + config.Separator + tool] = new McpRoutedTool(server.Cluster, tool);
                }
            }

            routes[route.Path] = new McpRoute(null, tools.ToFrozenDictionary(StringComparer.Ordinal));
        }

        _routes = routes.ToFrozenDictionary(StringComparer.Ordinal);
    }

    public McpRoute? Find(string path) => _routes.TryGetValue(path, out var route) ? route : null;
}

/// <param name="Cluster">The one server's cluster; null on a route with several servers.</param>
/// <param name="Tools">Exposed name → server cluster and the tool's own name; null on a single-server route.</param>
internal sealed record McpRoute(string? Cluster, FrozenDictionary<string, McpRoutedTool>? Tools);

internal readonly record struct McpRoutedTool(string Cluster, string Tool);
