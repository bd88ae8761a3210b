namespace ExtProc.Tenancy.Config;

/// <summary>
/// The top-level <c>mcp:</c> section: settings of MCP routes that belong to no tenant.
/// </summary>
/// <param name="AllowedHosts">
/// Host names (no port) MCP requests may address; null = any. Refusing other hosts is the DNS-rebinding
/// defence the MCP transport requires of localhost servers.
/// </param>
/// <param name="AllowedOrigins">
/// Origins (<c>scheme://host[:port]</c>) a browser may send; null = an Origin must name an allowed host, or,
/// without <c>allowedHosts</c>, the host the request addresses.
/// </param>
/// <param name="Separator">Between a server's name and a tool name on a route with several servers.</param>
/// <param name="Servers">MCP servers and the Envoy cluster each is reached through.</param>
/// <param name="Routes">MCP endpoint paths and the servers behind each.</param>
internal sealed record McpConfig(
    IReadOnlyList<string>? AllowedHosts,
    IReadOnlyList<string>? AllowedOrigins,
    string Separator,
    IReadOnlyList<McpServerConfig> Servers,
    IReadOnlyList<McpRouteConfig> Routes)
{
    public const string DefaultSeparator = "__";

    public static readonly McpConfig Default = new(null, null, DefaultSeparator, [], []);

    /// <summary>Where session bindings live and how long an idle one lasts.</summary>
    public McpSessionsConfig Sessions { get; init; } = McpSessionsConfig.Default;
}

/// <summary>
/// Session bindings: in this process by default; with a Redis endpoint, shared by every replica (a session
/// initialised through one replica is recognised by the others).
/// </summary>
/// <param name="Idle">A binding unused this long is forgotten (the client initialises again).</param>
/// <param name="Capacity">The in-process table's cap (the local cache's, with Redis).</param>
/// <param name="RedisEndpoint">StackExchange.Redis configuration string; null keeps bindings in this process.</param>
/// <param name="CallBudget">Hard bound per Redis call.</param>
internal sealed record McpSessionsConfig(TimeSpan Idle, int Capacity, string? RedisEndpoint, TimeSpan CallBudget)
{
    public static readonly McpSessionsConfig Default = new(TimeSpan.FromHours(24), 100_000, null, TimeSpan.FromMilliseconds(50));
}

/// <param name="Name">The server's alias: the tool prefix on routes with several servers.</param>
/// <param name="Cluster">The Envoy cluster (x-extproc-cluster) that reaches it.</param>
/// <param name="Tools">The tool names it offers; required on routes with several servers (the lookup table).</param>
internal sealed record McpServerConfig(string Name, string Cluster, IReadOnlyList<string>? Tools);

/// <param name="Path">The MCP endpoint path the route serves (exact, no query).</param>
/// <param name="Servers">One server: names pass through; several: tools are exposed as <c>server__tool</c>.</param>
internal sealed record McpRouteConfig(string Path, IReadOnlyList<string> Servers);
