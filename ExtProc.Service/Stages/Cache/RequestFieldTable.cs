using System.Collections.Frozen;
using ExtProc.Protocols;

namespace ExtProc.Stages.Cache;

/// <summary>Whether a top-level request field takes part in the cache key.</summary>
internal enum KeyRole
{
    /// <summary>The field can change the answer (or we cannot tell): it is part of the key.</summary>
    InKey,

    /// <summary>The field changes bookkeeping only (end-user ids, provider-side prompt-cache hints): left out.</summary>
    Ignored,
}

/// <summary>
/// The one table that classifies every top-level request field we know, per dialect. A field that is not in
/// it is in the key, so a field a new SDK starts sending can only cost hits, never serve a wrong answer; the
/// C3 test fails when a field the SDKs send is missing here, so the table is kept complete on purpose.
/// Only exact spellings are ignored: a case or Unicode variant of an ignored name is unknown, hence in key.
/// </summary>
internal static class RequestFieldTable
{
    public static readonly (ProtocolKind Protocol, string Name, KeyRole Role)[] Entries =
    [
        // OpenAI chat completions (providers.md §1.1).
        (ProtocolKind.OpenAiChat, "model", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "messages", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "tools", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "tool_choice", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "parallel_tool_calls", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "response_format", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "max_completion_tokens", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "max_tokens", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "stream", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "stream_options", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "stop", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "temperature", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "top_p", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "n", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "seed", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "presence_penalty", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "frequency_penalty", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "logit_bias", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "logprobs", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "top_logprobs", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "reasoning_effort", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "service_tier", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "modalities", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "audio", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "prediction", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "verbosity", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "web_search_options", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "moderation", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "functions", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "function_call", KeyRole.InKey),
        (ProtocolKind.OpenAiChat, "user", KeyRole.Ignored),
        (ProtocolKind.OpenAiChat, "safety_identifier", KeyRole.Ignored),
        (ProtocolKind.OpenAiChat, "metadata", KeyRole.Ignored),
        (ProtocolKind.OpenAiChat, "store", KeyRole.Ignored),
        (ProtocolKind.OpenAiChat, "prompt_cache_key", KeyRole.Ignored),
        (ProtocolKind.OpenAiChat, "prompt_cache_retention", KeyRole.Ignored),
        (ProtocolKind.OpenAiChat, "prompt_cache_options", KeyRole.Ignored),

        // Anthropic messages (providers.md §2.1).
        (ProtocolKind.AnthropicMessages, "model", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "max_tokens", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "messages", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "system", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "stop_sequences", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "temperature", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "top_p", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "top_k", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "tools", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "tool_choice", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "thinking", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "output_config", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "service_tier", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "stream", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "container", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "inference_geo", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "mcp_servers", KeyRole.InKey),
        (ProtocolKind.AnthropicMessages, "metadata", KeyRole.Ignored),
        (ProtocolKind.AnthropicMessages, "cache_control", KeyRole.Ignored),

        // Gemini generateContent: Google reads lowerCamel and snake_case alike.
        (ProtocolKind.Gemini, "contents", KeyRole.InKey),
        (ProtocolKind.Gemini, "systemInstruction", KeyRole.InKey),
        (ProtocolKind.Gemini, "system_instruction", KeyRole.InKey),
        (ProtocolKind.Gemini, "generationConfig", KeyRole.InKey),
        (ProtocolKind.Gemini, "generation_config", KeyRole.InKey),
        (ProtocolKind.Gemini, "safetySettings", KeyRole.InKey),
        (ProtocolKind.Gemini, "safety_settings", KeyRole.InKey),
        (ProtocolKind.Gemini, "tools", KeyRole.InKey),
        (ProtocolKind.Gemini, "toolConfig", KeyRole.InKey),
        (ProtocolKind.Gemini, "tool_config", KeyRole.InKey),
        (ProtocolKind.Gemini, "cachedContent", KeyRole.InKey),
        (ProtocolKind.Gemini, "cached_content", KeyRole.InKey),
        (ProtocolKind.Gemini, "labels", KeyRole.Ignored),
    ];

    private static readonly FrozenDictionary<string, KeyRole> OpenAi = Build(ProtocolKind.OpenAiChat);
    private static readonly FrozenDictionary<string, KeyRole> Anthropic = Build(ProtocolKind.AnthropicMessages);
    private static readonly FrozenDictionary<string, KeyRole> Gemini = Build(ProtocolKind.Gemini);

    /// <summary>The role of a top-level field; null when the table does not know it (treated as in key).</summary>
    public static KeyRole? Find(ProtocolKind protocol, ReadOnlySpan<char> name)
    {
        var table = protocol switch
        {
            ProtocolKind.OpenAiChat => OpenAi,
            ProtocolKind.AnthropicMessages => Anthropic,
            _ => Gemini,
        };
        return table.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name, out var role) ? role : null;
    }

    private static FrozenDictionary<string, KeyRole> Build(ProtocolKind protocol)
    {
        var map = new Dictionary<string, KeyRole>(StringComparer.Ordinal);
        foreach (var (kind, name, role) in Entries)
        {
            if (kind == protocol)
            {
                map.Add(name, role);
            }
        }

        return map.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
