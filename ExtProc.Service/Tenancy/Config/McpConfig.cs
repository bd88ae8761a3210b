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
internal sealed record McpConfig(IReadOnlyList<string>? AllowedHosts, IReadOnlyList<string>? AllowedOrigins)
{
    public static readonly McpConfig Default = new(null, null);
}
