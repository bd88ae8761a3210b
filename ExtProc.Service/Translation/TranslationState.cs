namespace ExtProc.Translation;

/// <summary>
/// What the response side of one request needs to know about its request: names we had to change,
/// whether the client streams and asked for usage, the model and stamps to put on synthesised responses.
/// Created by the request translation; read (never shared) by that request's response translation.
/// </summary>
internal sealed class TranslationState
{
    public TranslationState(UpstreamDialect dialect, string clientModel, string upstreamModel, string requestId, long created)
    {
        Dialect = dialect;
        ClientModel = clientModel;
        UpstreamModel = upstreamModel;
        RequestId = requestId;
        Created = created;
    }

    public UpstreamDialect Dialect { get; }

    /// <summary>The model the client asked for (echoed where a response has no model of its own).</summary>
    public string ClientModel { get; }

    public string UpstreamModel { get; }

    public string RequestId { get; }

    public long Created { get; }

    /// <summary>The client asked for a streamed response (for Gemini the routing stage picks the stream path from this).</summary>
    public bool Stream { get; set; }

    /// <summary>OpenAI clients: <c>stream_options.include_usage</c> was true.</summary>
    public bool IncludeUsage { get; set; }

    /// <summary>Upstream tool name → client tool name, only for names we had to rewrite.</summary>
    public Dictionary<string, string>? RenamedTools { get; private set; }

    public void AddRename(string upstreamName, string clientName) =>
        (RenamedTools ??= new Dictionary<string, string>(StringComparer.Ordinal))[upstreamName] = clientName;

    /// <summary>The client's name for a tool the upstream called, or null when we did not rename it.</summary>
    public string? RestoreToolName(ReadOnlySpan<byte> upstreamName)
    {
        if (RenamedTools is null || upstreamName.Length > 256)
        {
            return null;
        }

        Span<char> chars = stackalloc char[256];
        return System.Text.Encoding.UTF8.TryGetChars(upstreamName, chars, out var written)
            && RenamedTools.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(chars[..written], out var original)
            ? original
            : null;
    }
}
