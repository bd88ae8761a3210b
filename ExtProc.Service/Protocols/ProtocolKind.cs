namespace ExtProc.Protocols;

/// <summary>The wire protocol a request was identified as; decides parsing, policy and error dialect.</summary>
internal enum ProtocolKind
{
    /// <summary>Not agent traffic we govern: passes with one round trip.</summary>
    Other,
    OpenAiChat,
    AnthropicMessages,
    Gemini,
    Mcp,
}

internal static class ProtocolKindNames
{
    /// <summary>Stable names used in dynamic metadata and logs (part of the Envoy contract).</summary>
    public static string ToWireName(this ProtocolKind kind) => kind switch
    {
        ProtocolKind.OpenAiChat => "openai.chat",
        ProtocolKind.AnthropicMessages => "anthropic.messages",
        ProtocolKind.Gemini => "gemini",
        ProtocolKind.Mcp => "mcp",
        _ => "other",
    };
}
