using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>
/// Usage normalised across providers (providers.md §6.10): <see cref="Input"/> excludes cache reads and
/// writes (Anthropic's meaning), <see cref="Output"/> includes reasoning tokens (OpenAI's meaning).
/// </summary>
internal struct TokenUsage
{
    public long Input;
    public long CacheRead;
    public long CacheWrite;
    public long Output;
    public long Reasoning;
    public bool Seen;

    public readonly long Prompt => Input + CacheRead + CacheWrite;

    /// <summary>Sets (never adds: Anthropic stream usage is cumulative) the fields an Anthropic usage object carries.</summary>
    public void ReadAnthropic(ReadOnlySpan<byte> document, JsonSlice usage)
    {
        if (usage.Kind(document) != JsonTokenType.StartObject)
        {
            return;
        }

        Seen = true;
        var reader = usage.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("input_tokens"u8))
            {
                Input = Number(ref reader, Input);
            }
            else if (reader.ValueTextEquals("output_tokens"u8))
            {
                Output = Number(ref reader, Output);
            }
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
            {
                CacheRead = Number(ref reader, CacheRead);
            }
            else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
            {
                CacheWrite = Number(ref reader, CacheWrite);
            }
            else if (reader.ValueTextEquals("output_tokens_details"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("thinking_tokens"u8))
                    {
                        Reasoning = Number(ref reader, Reasoning);
                    }
                    else
                    {
                        JsonRead.SkipPropertyValue(ref reader);
                    }
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }
    }

    /// <summary>Reads an OpenAI usage object (cached tokens are part of prompt_tokens there).</summary>
    public void ReadOpenAI(ReadOnlySpan<byte> document, JsonSlice usage)
    {
        if (usage.Kind(document) != JsonTokenType.StartObject)
        {
            return;
        }

        Seen = true;
        long prompt = 0, cached = 0, written = 0;
        var reader = usage.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                prompt = Number(ref reader, 0);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                Output = Number(ref reader, 0);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("completion_tokens_details"u8))
            {
                var isPrompt = reader.ValueTextEquals("prompt_tokens_details"u8);
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (isPrompt && reader.ValueTextEquals("cached_tokens"u8))
                    {
                        cached = Number(ref reader, 0);
                    }
                    else if (isPrompt && reader.ValueTextEquals("cache_write_tokens"u8))
                    {
                        written = Number(ref reader, 0);
                    }
                    else if (!isPrompt && reader.ValueTextEquals("reasoning_tokens"u8))
                    {
                        Reasoning = Number(ref reader, 0);
                    }
                    else
                    {
                        JsonRead.SkipPropertyValue(ref reader);
                    }
                }
            }
            else if (reader.ValueTextEquals("prompt_cache_hit_tokens"u8))
            {
                cached = Number(ref reader, 0); // DeepSeek's name for cached prompt tokens
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        CacheRead = cached;
        CacheWrite = written;
        Input = Math.Max(0, prompt - cached - written);
    }

    /// <summary>Reads Gemini usageMetadata (cumulative on every chunk: the last one wins).</summary>
    public void ReadGemini(ReadOnlySpan<byte> document, JsonSlice usage)
    {
        if (usage.Kind(document) != JsonTokenType.StartObject)
        {
            return;
        }

        Seen = true;
        long prompt = 0, candidates = 0, thoughts = 0, cached = 0, toolPrompt = 0;
        var reader = usage.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("promptTokenCount"u8))
            {
                prompt = Number(ref reader, 0);
            }
            else if (reader.ValueTextEquals("candidatesTokenCount"u8))
            {
                candidates = Number(ref reader, 0);
            }
            else if (reader.ValueTextEquals("thoughtsTokenCount"u8))
            {
                thoughts = Number(ref reader, 0);
            }
            else if (reader.ValueTextEquals("cachedContentTokenCount"u8))
            {
                cached = Number(ref reader, 0);
            }
            else if (reader.ValueTextEquals("toolUsePromptTokenCount"u8))
            {
                toolPrompt = Number(ref reader, 0);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        CacheRead = cached;
        CacheWrite = 0;
        Input = Math.Max(0, prompt + toolPrompt - cached);
        Output = candidates + thoughts;
        Reasoning = thoughts;
    }

    public readonly void WriteOpenAI(Utf8JsonWriter writer)
    {
        writer.WriteStartObject("usage"u8);
        writer.WriteNumber("prompt_tokens"u8, Prompt);
        writer.WriteNumber("completion_tokens"u8, Output);
        writer.WriteNumber("total_tokens"u8, Prompt + Output);
        writer.WriteStartObject("prompt_tokens_details"u8);
        writer.WriteNumber("cached_tokens"u8, CacheRead);
        writer.WriteNumber("cache_write_tokens"u8, CacheWrite);
        writer.WriteEndObject();
        writer.WriteStartObject("completion_tokens_details"u8);
        writer.WriteNumber("reasoning_tokens"u8, Reasoning);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    public readonly void WriteAnthropic(Utf8JsonWriter writer)
    {
        writer.WriteStartObject("usage"u8);
        writer.WriteNumber("input_tokens"u8, Input);
        writer.WriteNumber("output_tokens"u8, Output);
        writer.WriteNumber("cache_read_input_tokens"u8, CacheRead);
        writer.WriteNumber("cache_creation_input_tokens"u8, CacheWrite);
        writer.WriteEndObject();
    }

    private static long Number(ref Utf8JsonReader reader, long fallback)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) ? value : fallback;
    }
}
