namespace ExtProc.Tenancy.Config;

/// <summary>Reads the MCP settings of a policy's <c>mcp:</c> map next to its <c>tools</c> and <c>methods</c>.</summary>
internal static class McpPolicyConfigParser
{
    public const int MaxArgumentBytesCeiling = 16 * 1024 * 1024;

    /// <summary>Reads <c>destructiveTools</c>, <c>maxArgumentBytes</c> and <c>toolChanges</c>; the caller finishes the map.</summary>
    public static McpPolicyConfig Read(MapReader mcp, ConfigErrors errors)
    {
        var destructive = mcp.StringList("destructiveTools");
        for (var i = 0; destructive is not null && i < destructive.Count; i++)
        {
            if (destructive[i].Length == 0 || !IsPrintable(destructive[i]))
            {
                errors.Add(mcp.PathOf("destructiveTools"), mcp.Node, "entries must be non-empty printable ASCII tool names or globs");
            }
        }

        var maxArguments = mcp.Int("maxArgumentBytes", 2, MaxArgumentBytesCeiling);
        McpToolChangeAction? changes = null;
        var changesText = mcp.String("toolChanges");
        if (changesText is not null)
        {
            changes = changesText switch
            {
                "log" => McpToolChangeAction.Log,
                "block" => McpToolChangeAction.Block,
                _ => null,
            };
            if (changes is null)
            {
                errors.Add(mcp.PathOf("toolChanges"), mcp.Node, "must be 'log' or 'block'");
            }
        }

        return destructive is null && maxArguments is null && changes is null
            ? McpPolicyConfig.None
            : new McpPolicyConfig(destructive, maxArguments, changes);
    }

    private static bool IsPrintable(string value)
    {
        foreach (var c in value)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }

        return true;
    }
}
