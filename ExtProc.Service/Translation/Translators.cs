using ExtProc.Protocols;
using ExtProc.Translation.AnthropicToOpenAI;
using ExtProc.Translation.OpenAIToAnthropic;
using ExtProc.Translation.OpenAIToCompatible;
using ExtProc.Translation.OpenAIToGemini;

namespace ExtProc.Translation;

/// <summary>
/// The directions we translate, looked up by the client's schema, the upstream's schema and (for
/// OpenAI-compatible upstreams) its dialect. Same schema and no dialect quirks means no translator.
/// </summary>
internal static class Translators
{
    public static bool TryGet(ProtocolKind client, ProtocolKind upstream, UpstreamDialect dialect, out TranslationDirection? direction)
    {
        direction = (client, upstream) switch
        {
            (ProtocolKind.OpenAiChat, ProtocolKind.AnthropicMessages) => OpenAIToAnthropicTranslator.Instance,
            (ProtocolKind.AnthropicMessages, ProtocolKind.OpenAiChat) => AnthropicToOpenAITranslator.For(dialect),
            (ProtocolKind.OpenAiChat, ProtocolKind.Gemini) => OpenAIToGeminiTranslator.Instance,
            (ProtocolKind.OpenAiChat, ProtocolKind.OpenAiChat) when dialect != UpstreamDialect.Standard => OpenAIToCompatibleTranslator.For(dialect),
            _ => null,
        };
        return direction is not null;
    }
}
