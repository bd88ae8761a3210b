namespace ExtProc.Tenancy.Config;

/// <summary>
/// The MCP settings of a tenant policy (or key scope) beyond its tool and method lists. Null means "not
/// restricted by this level", as for the lists.
/// </summary>
/// <param name="DestructiveTools">
/// When set, a tool the server marks destructive (or whose annotations are not known yet) may be called only
/// if it matches one of these globs; tools known read-only or non-destructive need no entry.
/// </param>
/// <param name="MaxArgumentBytes">Largest <c>params.arguments</c> of a tools/call, in bytes of JSON.</param>
/// <param name="ToolChanges">What to do when a tool's definition differs from the one first listed.</param>
/// <param name="LlmTools">What to do with an LLM request that declares a tool outside <c>tools</c>.</param>
/// <param name="LlmToolCalls">What to do with a model answer that calls a tool outside <c>tools</c>.</param>
/// <param name="Prompts">Globs of the prompt names prompts/get and prompts/list may show.</param>
/// <param name="Resources">Globs of the resource URIs resources/read, subscribe and list may show.</param>
internal sealed record McpPolicyConfig(
    IReadOnlyList<string>? DestructiveTools,
    int? MaxArgumentBytes,
    McpToolChangeAction? ToolChanges,
    LlmToolAction? LlmTools = null,
    LlmToolCallAction? LlmToolCalls = null,
    IReadOnlyList<string>? Prompts = null,
    IReadOnlyList<string>? Resources = null)
{
    public static readonly McpPolicyConfig None = new(null, null, null);
}

/// <summary>An LLM request declaring a tool the tenant may not use.</summary>
internal enum LlmToolAction
{
    /// <summary>Refuse the request (the default).</summary>
    Refuse,

    /// <summary>Remove the tool from the request and send the rest on.</summary>
    Strip,
}

/// <summary>A model answer calling a tool the tenant may not use.</summary>
internal enum LlmToolCallAction
{
    /// <summary>Pass it on, logged and marked (x-extproc-tool-violation), the default.</summary>
    Flag,

    /// <summary>Replace a JSON answer with an error; a streamed answer is logged (its headers have left).</summary>
    Block,
}

/// <summary>The answer to a tool whose definition changed between two lists (a "rug pull").</summary>
internal enum McpToolChangeAction
{
    /// <summary>Log a warning and go on with the new definition.</summary>
    Log,

    /// <summary>Hide the changed tool from lists and refuse calls to it (the first definition stays pinned).</summary>
    Block,
}
