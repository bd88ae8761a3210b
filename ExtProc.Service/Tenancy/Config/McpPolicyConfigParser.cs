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

        var prompts = mcp.StringList("prompts");
        var resources = mcp.StringList("resources");
        foreach (var (name, list) in new[] { ("prompts", prompts), ("resources", resources) })
        {
            for (var i = 0; list is not null && i < list.Count; i++)
            {
                if (list[i].Length == 0 || !IsPrintable(list[i]))
                {
                    errors.Add(mcp.PathOf(name), mcp.Node, "entries must be non-empty printable ASCII names or globs");
                }
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

        var llmTools = Choice(mcp, "llmTools", errors, ("refuse", LlmToolAction.Refuse), ("strip", LlmToolAction.Strip));
        var llmToolCalls = Choice(mcp, "llmToolCalls", errors, ("flag", LlmToolCallAction.Flag), ("block", LlmToolCallAction.Block));
        return destructive is null && maxArguments is null && changes is null && llmTools is null && llmToolCalls is null
            && prompts is null && resources is null
            ? McpPolicyConfig.None
            : new McpPolicyConfig(destructive, maxArguments, changes, llmTools, llmToolCalls, prompts, resources);
    }

    private static T? Choice<T>(MapReader map, string name, ConfigErrors errors, params (string Text, T Value)[] choices)
        where T : struct, Enum
    {
        var text = map.String(name);
        if (text is null)
        {
            return null;
        }

        foreach (var (choice, value) in choices)
        {
            if (string.Equals(choice, text, StringComparison.Ordinal))
            {
                return value;
            }
        }

        errors.Add(map.PathOf(name), map.Node, "must be '" + choices[0].Text + "' or '" + choices[1].Text + "'");
        return null;
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
