namespace ExtProc.Protocols;

/// <summary>
/// What ExtProc needs to know of an LLM request, read in one pass: enough for policy, limits, routing and
/// cache keys without keeping a DOM. One per request; reset and reused where pooled.
/// </summary>
internal sealed class RequestSummary
{
    /// <summary>The public model name the client asked for (for Gemini it comes from the path).</summary>
    public string? Model { get; set; }

    public bool Stream { get; set; }

    /// <summary>max_tokens (OpenAI legacy, Anthropic) or generationConfig.maxOutputTokens (Gemini).</summary>
    public int? MaxTokens { get; set; }

    /// <summary>OpenAI max_completion_tokens (includes reasoning).</summary>
    public int? MaxCompletionTokens { get; set; }

    public List<ToolSummary> Tools { get; } = [];

    /// <summary>The tool_choice mode as sent ("auto", "none", "required", "any", "tool", "function", ...).</summary>
    public string? ToolChoice { get; set; }

    /// <summary>The tool a forced tool_choice names.</summary>
    public string? ToolChoiceName { get; set; }

    /// <summary>Entries of messages (OpenAI, Anthropic) or contents (Gemini).</summary>
    public int MessageCount { get; set; }

    /// <summary>Bytes of text in messages and system prompts: the base of the token estimate.</summary>
    public long ContentBytes { get; set; }

    /// <summary>OpenAI user or Anthropic metadata.user_id, when sent.</summary>
    public string? User { get; set; }
}

/// <summary>
/// A tool the request offers: its name and where its whole definition lies in the body. The definition
/// hash is computed only when something needs it (cache keys, pinning): most requests never pay for it.
/// </summary>
internal readonly record struct ToolSummary(string Name, int Offset, int Length)
{
    /// <summary>SHA-256 prefix of the canonical form of the definition (see <see cref="ToolCanonicalForm"/>).</summary>
    public UInt128 DefinitionHash(ReadOnlySpan<byte> body) => ToolCanonicalForm.Hash(body.Slice(Offset, Length));
}
