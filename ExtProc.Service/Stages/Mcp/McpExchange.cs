namespace ExtProc.Stages.Mcp;

/// <summary>What the MCP stage learned of one request in its headers and body phases, for the response.</summary>
internal sealed class McpExchange : IDisposable
{
    /// <summary>Hex SHA-256 of the Mcp-Session-Id the client sent, or null.</summary>
    public string? SessionHash { get; set; }

    /// <summary>Who is asking: tenant, identity kind and key id or subject.</summary>
    public string Owner { get; set; } = "";

    /// <summary>The MCP endpoint (path) the request went to: the server the tool catalog is kept for.</summary>
    public string Server { get; set; } = "";

    public bool IsDelete { get; set; }

    /// <summary>The configured route of the endpoint, if any (mcp.routes).</summary>
    public McpRoute? Route { get; set; }

    /// <summary>The response must be read to filter its list (tools, prompts or resources).</summary>
    public bool FilterTools { get; set; }

    /// <summary>Which list <see cref="FilterTools"/> filters.</summary>
    public Protocols.Mcp.McpListKind ListKind { get; set; }

    /// <summary>Ends the request's (session, id) entry in the in-flight table.</summary>
    public IDisposable? InFlight { get; set; }

    public void Dispose()
    {
        InFlight?.Dispose();
        InFlight = null;
    }
}
