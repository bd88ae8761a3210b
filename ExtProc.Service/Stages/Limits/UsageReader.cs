using System.Text.Json;

namespace ExtProc.Stages.Limits;

/// <summary>Provider-reported usage normalised as in providers.md §6.10 (OpenAI names; input includes cached and cache-write).</summary>
internal readonly record struct TokenUsage(long Input, long CachedInput, long CacheWrite, long Output, long Reasoning)
{
    public long Total => Input + Output;
}

/// <summary>
/// Reads usage from a response: a buffered JSON body, or the events of an SSE body. OpenAI sends it in
/// <c>usage</c> (streams: the last chunk, when asked); Anthropic in <c>usage</c> / <c>message.usage</c>
/// (streams: input in message_start, cumulative totals in message_delta); Gemini in <c>usageMetadata</c>
/// (cumulative in every chunk). Each usage object found sets the fields it carries, so the last word wins.
/// </summary>
internal struct UsageReader
{
    private long? _promptTokens, _cachedTokens, _cacheWriteTokens, _completionTokens, _reasoningTokens;
    private long? _inputTokens, _cacheRead, _cacheCreation, _outputTokens, _thinkingTokens;
    private long? _geminiPrompt, _geminiCached, _geminiCandidates, _geminiThoughts;

    public bool Found { get; private set; }

    public readonly TokenUsage Usage
    {
        get
        {
            if (_geminiPrompt is not null || _geminiCandidates is not null)
            {
                var thoughts = _geminiThoughts ?? 0;
                return new TokenUsage(_geminiPrompt ?? 0, _geminiCached ?? 0, 0, (_geminiCandidates ?? 0) + thoughts, thoughts);
            }

            if (_inputTokens is not null || _outputTokens is not null)
            {
                var read = _cacheRead ?? 0;
                var write = _cacheCreation ?? 0;
                return new TokenUsage((_inputTokens ?? 0) + read + write, read, write, _outputTokens ?? 0, _thinkingTokens ?? 0);
            }

            return new TokenUsage(_promptTokens ?? 0, _cachedTokens ?? 0, _cacheWriteTokens ?? 0, _completionTokens ?? 0, _reasoningTokens ?? 0);
        }
    }

    /// <summary>Reads one JSON document (a whole body or one SSE event's data); false when it is not JSON.</summary>
    public bool ReadJson(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 128 });
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth <= 2
                    && (reader.ValueTextEquals("usage"u8) || reader.ValueTextEquals("usageMetadata"u8)))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadUsageObject(ref reader, parent: default);
                        Found = true;
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }

            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private void ReadUsageObject(ref Utf8JsonReader reader, ReadOnlySpan<byte> parent)
    {
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }

            var name = reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan;
            reader.Read();
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                ReadUsageObject(ref reader, name);
                continue;
            }

            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var value) || value < 0)
            {
                reader.Skip();
                continue;
            }

            Set(parent, name, value);
        }
    }

    private void Set(ReadOnlySpan<byte> parent, ReadOnlySpan<byte> name, long value)
    {
        // Usage objects are small and come once or a few times per response: strings are cheap here.
        var field = System.Text.Encoding.UTF8.GetString(name);
        switch (System.Text.Encoding.UTF8.GetString(parent), field)
        {
            case ("", "prompt_tokens"): _promptTokens = value; break;
            case ("", "completion_tokens"): _completionTokens = value; break;
            case ("", "input_tokens"): _inputTokens = value; break;
            case ("", "output_tokens"): _outputTokens = value; break;
            case ("", "cache_read_input_tokens"): _cacheRead = value; break;
            case ("", "cache_creation_input_tokens"): _cacheCreation = value; break;
            case ("", "promptTokenCount"): _geminiPrompt = value; break;
            case ("", "candidatesTokenCount"): _geminiCandidates = value; break;
            case ("", "cachedContentTokenCount"): _geminiCached = value; break;
            case ("", "thoughtsTokenCount"): _geminiThoughts = value; break;
            case ("prompt_tokens_details", "cached_tokens"): _cachedTokens = value; break;
            case ("prompt_tokens_details", "cache_write_tokens"): _cacheWriteTokens = value; break;
            case ("completion_tokens_details", "reasoning_tokens"): _reasoningTokens = value; break;
            case ("output_tokens_details", "thinking_tokens"): _thinkingTokens = value; break;
        }
    }
}
