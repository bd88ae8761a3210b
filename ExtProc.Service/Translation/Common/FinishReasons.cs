namespace ExtProc.Translation.Common;

/// <summary>
/// The finish / stop reason master table (providers.md §6.9), strict: OpenAI clients only ever get the
/// five OpenAI values, Anthropic clients only documented stop reasons.
/// </summary>
internal static class FinishReasons
{
    public static ReadOnlySpan<byte> Stop => "stop"u8;

    public static ReadOnlySpan<byte> ToolCalls => "tool_calls"u8;

    public static ReadOnlySpan<byte> Length => "length"u8;

    public static ReadOnlySpan<byte> ContentFilter => "content_filter"u8;

    public static ReadOnlySpan<byte> FromAnthropic(ReadOnlySpan<byte> stopReason)
    {
        if (stopReason.SequenceEqual("tool_use"u8))
        {
            return ToolCalls;
        }

        if (stopReason.SequenceEqual("max_tokens"u8) || stopReason.SequenceEqual("model_context_window_exceeded"u8))
        {
            return Length;
        }

        return stopReason.SequenceEqual("refusal"u8) ? ContentFilter : Stop;
    }

    public static ReadOnlySpan<byte> FromGemini(ReadOnlySpan<byte> finishReason)
    {
        if (finishReason.SequenceEqual("MAX_TOKENS"u8))
        {
            return Length;
        }

        if (finishReason.SequenceEqual("SAFETY"u8) || finishReason.SequenceEqual("BLOCKLIST"u8)
            || finishReason.SequenceEqual("PROHIBITED_CONTENT"u8) || finishReason.SequenceEqual("SPII"u8)
            || finishReason.SequenceEqual("IMAGE_SAFETY"u8) || finishReason.SequenceEqual("IMAGE_PROHIBITED_CONTENT"u8)
            || finishReason.SequenceEqual("RECITATION"u8) || finishReason.SequenceEqual("IMAGE_RECITATION"u8))
        {
            return ContentFilter;
        }

        return Stop;
    }

    /// <summary>An OpenAI-compatible upstream's reason in strict OpenAI terms (Mistral <c>model_length</c>, Together <c>eos</c>, …).</summary>
    public static ReadOnlySpan<byte> NormalizeOpenAI(ReadOnlySpan<byte> finishReason)
    {
        if (finishReason.SequenceEqual("tool_calls"u8) || finishReason.SequenceEqual("function_call"u8))
        {
            return ToolCalls;
        }

        if (finishReason.SequenceEqual("length"u8) || finishReason.SequenceEqual("model_length"u8))
        {
            return Length;
        }

        return finishReason.SequenceEqual("content_filter"u8) ? ContentFilter : Stop;
    }

    public static ReadOnlySpan<byte> ToAnthropic(ReadOnlySpan<byte> openAiReason)
    {
        var normalized = NormalizeOpenAI(openAiReason);
        if (normalized.SequenceEqual(ToolCalls))
        {
            return "tool_use"u8;
        }

        if (normalized.SequenceEqual(Length))
        {
            return "max_tokens"u8;
        }

        return normalized.SequenceEqual(ContentFilter) ? "refusal"u8 : "end_turn"u8;
    }
}
